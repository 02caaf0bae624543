//! Where a model's bytes come from: read once, before the fork, and never again.

use std::path::{Path, PathBuf};

use crate::io_error::io_cause;
use crate::metadata::{ModelMeta, OpenError};

/// Where a model's bytes are: always in memory.
///
/// A model file is read once, when the app is resolved, which the master does before it
/// forks: every build of that generation (the proof, `--preload`, each worker's lazy load,
/// a worker respawned after a crash) uses the bytes the generation was proven with, whatever
/// happens to the file afterwards. A new file is seen by a reload (HUP), which proves it first.
#[derive(Clone, Debug)]
pub enum Source {
    /// A model file, as read when the app was resolved.
    File {
        /// Where it was read from (for messages, and for external tensor data).
        path: PathBuf,
        /// Its content.
        bytes: bytes::Bytes,
    },
    /// Bytes compiled into the binary (the default iris model) or made by a test.
    Bytes(&'static str, bytes::Bytes),
}

impl Source {
    /// Reads a model file; the error names the file and the cause.
    pub fn read_file(path: PathBuf) -> Result<Source, OpenError> {
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Source::File {
                path,
                bytes: bytes.into(),
            }),
            Err(e) => Err(OpenError::Read(format!(
                "{}: cannot read: {}",
                path.display(),
                io_cause(&e)
            ))),
        }
    }

    /// The model's bytes.
    pub fn bytes(&self) -> &bytes::Bytes {
        match self {
            Source::File { bytes, .. } | Source::Bytes(_, bytes) => bytes,
        }
    }

    /// The directory external tensor data is resolved against.
    pub fn dir(&self) -> Option<&Path> {
        self.path().and_then(Path::parent)
    }

    /// How logs and errors name it: the path, or `<embedded iris>`.
    pub fn display(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Bytes(what, _) => format!("<{what}>"),
        }
    }

    /// The file path, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::File { path, .. } => Some(path),
            Source::Bytes(..) => None,
        }
    }

    /// Reads the metadata: the cheap check the master makes before forking (the weights
    /// are skipped, never decoded).
    pub fn read_meta(&self) -> Result<ModelMeta, OpenError> {
        ModelMeta::from_onnx(self.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_say_so() {
        let e = Source::read_file("/nonexistent/model.onnx".into()).unwrap_err();
        assert_eq!(
            e,
            OpenError::Read("/nonexistent/model.onnx: cannot read: no such file".into())
        );
    }
}
