//! What a setting's value looks like: a [`Kind`] says how a value is parsed, what a wrong
//! one is told, and how it is written back as TOML. Every place that reads a setting's text
//! (the command line, `SERVE_CMD_ARGS`, a config file, a manifest's per-model keys) parses it
//! with its kind, so one setting has one message wherever it was given.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::ValueRange;
use nix::unistd::{Gid, Group, Uid, User};
use serve_log::{AccessFormat, Format, Level};

use crate::bind::Bind;
use crate::forwarded::{ForwardedAllow, NotAnAddress};

/// What a setting's value looks like.
pub trait Kind {
    /// The resolved value.
    type Value: Clone + Debug;
    /// The placeholder `--help` shows (`SECONDS`, `N`...).
    const VALUE_NAME: &'static str;
    /// True for an on/off setting: `--preload` alone means true, `--preload=false` false.
    const SWITCH: bool = false;
    /// The value from its text; the error says what was wrong and what is expected (the
    /// caller puts the flag in front).
    fn parse(text: &str) -> Result<Self::Value, String>;
    /// The value as a config file writes it; `None` leaves the key out.
    fn to_toml(value: &Self::Value) -> Option<toml::Value>;
    /// The value when nobody gave one and the table has no default: only an optional
    /// setting has one (absent).
    fn absent() -> Option<Self::Value> {
        None
    }
}

/// How many words a setting takes after its flag.
pub fn num_args<K: Kind>() -> ValueRange {
    if K::SWITCH {
        ValueRange::new(0..=1)
    } else {
        ValueRange::SINGLE
    }
}

/// What a switch given alone means.
pub fn missing_value<K: Kind>() -> Option<&'static str> {
    K::SWITCH.then_some("true")
}

/// A setting's `--help` line: its text and its default.
pub fn help(text: &str, default: Option<&str>) -> String {
    match default {
        Some(d) => format!("{text} [default: {d}]"),
        None => text.to_string(),
    }
}

fn int(n: u64) -> Option<toml::Value> {
    Some(toml::Value::Integer(n.min(i64::MAX as u64) as i64))
}

/// A value of a config file (or a manifest) as the command line would give it: the text
/// its kind parses. `None` for a table or a date, which no setting takes.
pub fn toml_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Deserializes a manifest's per-model key (`max_batch_size = 64`) with the kind of the
/// setting it overrides, so that it is checked, and a wrong one told, as the flag is
/// (`max_batch_size: 0 is not allowed here; expected 1 (no batching) or more`). A manifest
/// calls it from one small function per key (serde's `deserialize_with`).
pub fn per_model<'de, K: Kind, D: serde::Deserializer<'de>>(
    key: &str,
    d: D,
) -> Result<Option<K::Value>, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let value = toml::Value::deserialize(d)?;
    let text = toml_text(&value).ok_or_else(|| {
        D::Error::custom(format!(
            "{key}: {value} is not a value; expected a number or a string"
        ))
    })?;
    K::parse(&text)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{key}: {e}")))
}

/// A whole number from `min`: a number below it (a negative one too) is told what is
/// allowed (`allowed`, as "1 or more"); anything else, what a number looks like.
fn whole<N: std::str::FromStr>(
    text: &str,
    min: u64,
    allowed: &str,
    example: &str,
) -> Result<N, String> {
    let t = text.trim();
    match t.parse::<i128>() {
        Ok(n) if n < i128::from(min) => Err(format!("{t} is not allowed here; expected {allowed}")),
        _ => t.parse::<N>().map_err(|_| {
            format!("{text:?} is not a number; expected a whole number, as {example}")
        }),
    }
}

/// On or off.
pub struct Switch;

impl Kind for Switch {
    type Value = bool;
    const VALUE_NAME: &'static str = "BOOL";
    const SWITCH: bool = true;
    fn parse(text: &str) -> Result<bool, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{text:?} is not a switch; expected true or false")),
        }
    }
    fn to_toml(value: &bool) -> Option<toml::Value> {
        Some((*value).into())
    }
}

/// Seconds, fractions allowed (`30`, `0.5`, `2s`).
pub struct Seconds;

impl Kind for Seconds {
    type Value = Duration;
    const VALUE_NAME: &'static str = "SECONDS";
    fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim().trim_end_matches('s');
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
            Ok(v) if v < 0.0 => Err(format!("{} is not allowed here; expected 0 or more", t)),
            _ => Err(format!(
                "{text:?} is not a duration; expected a number of seconds, as 30 or 0.5"
            )),
        }
    }
    fn to_toml(value: &Duration) -> Option<toml::Value> {
        Some(toml::Value::Float(value.as_secs_f64()))
    }
}

/// Seconds, more than zero.
pub struct PositiveSeconds;

impl Kind for PositiveSeconds {
    type Value = Duration;
    const VALUE_NAME: &'static str = "SECONDS";
    fn parse(text: &str) -> Result<Duration, String> {
        match Seconds::parse(text)? {
            d if d.is_zero() => Err(format!(
                "{} is not allowed here; expected more than 0 seconds",
                text.trim()
            )),
            d => Ok(d),
        }
    }
    fn to_toml(value: &Duration) -> Option<toml::Value> {
        Seconds::to_toml(value)
    }
}

/// A number that may be 0.
pub struct Count;

impl Kind for Count {
    type Value = usize;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<usize, String> {
        whole(text, 0, "0 or more", "100")
    }
    fn to_toml(value: &usize) -> Option<toml::Value> {
        int(*value as u64)
    }
}

/// Declares a kind that parses and writes values as another does, under its own
/// placeholder in `--help`.
macro_rules! placeholder {
    ($(#[$doc:meta])* $name:ident = $like:ty, $value_name:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl Kind for $name {
            type Value = <$like as Kind>::Value;
            const VALUE_NAME: &'static str = $value_name;
            fn parse(text: &str) -> Result<Self::Value, String> {
                <$like>::parse(text)
            }
            fn to_toml(value: &Self::Value) -> Option<toml::Value> {
                <$like>::to_toml(value)
            }
        }
    };
}

placeholder!(
    /// A number of bytes that may be 0 (no limit).
    Bytes = Count, "BYTES"
);

/// A number from 1.
pub struct AtLeastOne;

impl Kind for AtLeastOne {
    type Value = usize;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<usize, String> {
        whole(text, 1, "1 or more", "4")
    }
    fn to_toml(value: &usize) -> Option<toml::Value> {
        Count::to_toml(value)
    }
}

/// A count of rows from 1.
pub struct Rows;

impl Kind for Rows {
    type Value = usize;
    const VALUE_NAME: &'static str = "ROWS";
    fn parse(text: &str) -> Result<usize, String> {
        whole(text, 1, "1 (no batching) or more", "64")
    }
    fn to_toml(value: &usize) -> Option<toml::Value> {
        Count::to_toml(value)
    }
}

/// A 64-bit count (requests), 0 meaning off.
pub struct Requests;

impl Kind for Requests {
    type Value = u64;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<u64, String> {
        whole(text, 0, "0 or more", "1000")
    }
    fn to_toml(value: &u64) -> Option<toml::Value> {
        int(*value)
    }
}

placeholder!(
    /// Microseconds.
    Micros = Requests, "MICROSECONDS"
);

placeholder!(
    /// Bytes per second; 0 disables.
    Rate = Count, "BYTES_PER_S"
);

/// The listen queue's length, as listen(2) takes it.
pub struct Backlog;

impl Kind for Backlog {
    type Value = i32;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<i32, String> {
        match text.trim().parse::<i32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "{text:?} is not a queue length; expected a number from 1, as 2048"
            )),
        }
    }
    fn to_toml(value: &i32) -> Option<toml::Value> {
        int(*value as u64)
    }
}

/// Bytes with an optional K, M or G (powers of 1024).
pub struct Size;

impl Kind for Size {
    type Value = u64;
    const VALUE_NAME: &'static str = "SIZE";
    fn parse(text: &str) -> Result<u64, String> {
        let t = text.trim();
        let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
            Some('K') => (&t[..t.len() - 1], 1u64 << 10),
            Some('M') => (&t[..t.len() - 1], 1 << 20),
            Some('G') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        num.trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a size; expected bytes with an optional K, M or G suffix, \
                     as 1048576 or 1M"
                )
            })
    }
    fn to_toml(value: &u64) -> Option<toml::Value> {
        int(*value)
    }
}

/// A file mode mask, octal as `0o22` or `022`.
pub struct Umask;

impl Kind for Umask {
    type Value = u32;
    const VALUE_NAME: &'static str = "MASK";
    fn parse(text: &str) -> Result<u32, String> {
        let t = text.trim();
        let parsed = if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
            u32::from_str_radix(o, 8).ok()
        } else if let Some(h) = t.strip_prefix("0x") {
            u32::from_str_radix(h, 16).ok()
        } else if t.len() > 1 && t.starts_with('0') {
            u32::from_str_radix(&t[1..], 8).ok()
        } else {
            t.parse().ok()
        };
        match parsed {
            Some(m) if m <= 0o777 => Ok(m),
            _ => Err(format!(
                "{text:?} is not a umask; expected octal as 0o22 or 022"
            )),
        }
    }
    fn to_toml(value: &u32) -> Option<toml::Value> {
        Some(format!("0o{value:o}").into())
    }
}

/// Text, taken as given.
pub struct Text;

impl Kind for Text {
    type Value = String;
    const VALUE_NAME: &'static str = "TEXT";
    fn parse(text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
    fn to_toml(value: &String) -> Option<toml::Value> {
        Some(value.clone().into())
    }
}

placeholder!(
    /// A name, as `ps` shows it.
    ProcessName = Text, "NAME"
);

placeholder!(
    /// A model's name on the wire.
    ModelName = Text, "NAME"
);

placeholder!(
    /// A file, or `-` for the standard stream.
    LogFile = Text, "FILE"
);

/// A path.
pub struct File;

impl Kind for File {
    type Value = PathBuf;
    const VALUE_NAME: &'static str = "FILE";
    fn parse(text: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(text))
    }
    fn to_toml(value: &PathBuf) -> Option<toml::Value> {
        Some(value.display().to_string().into())
    }
}

/// An address to listen on, as `--bind` takes it (`HOST:PORT`, `[::1]:PORT`, `:PORT`,
/// `unix:PATH`, `fd://N`); a host name may give several.
pub struct Listen;

impl Kind for Listen {
    type Value = Vec<Bind>;
    const VALUE_NAME: &'static str = "ADDRESS";
    fn parse(text: &str) -> Result<Self::Value, String> {
        Bind::parse(text).map_err(|e| e.to_string())
    }
    fn to_toml(value: &Self::Value) -> Option<toml::Value> {
        let text: Vec<String> = value.iter().map(ToString::to_string).collect();
        Some(text.join(",").into())
    }
}

/// A user of this machine, by name or uid.
pub struct UserName;

impl Kind for UserName {
    type Value = (String, Uid);
    const VALUE_NAME: &'static str = "USER";
    fn parse(text: &str) -> Result<(String, Uid), String> {
        let found = match text.parse::<u32>() {
            Ok(n) => Some(
                User::from_uid(Uid::from_raw(n))
                    .ok()
                    .flatten()
                    .map_or((text.to_string(), Uid::from_raw(n)), |u| (u.name, u.uid)),
            ),
            Err(_) => User::from_name(text)
                .ok()
                .flatten()
                .map(|u| (u.name, u.uid)),
        };
        found.ok_or_else(|| format!("no user {text:?} on this machine; pass a user name or uid"))
    }
    fn to_toml(value: &(String, Uid)) -> Option<toml::Value> {
        Some(value.0.clone().into())
    }
}

/// A group of this machine, by name or gid.
pub struct GroupName;

impl Kind for GroupName {
    type Value = (String, Gid);
    const VALUE_NAME: &'static str = "GROUP";
    fn parse(text: &str) -> Result<(String, Gid), String> {
        let found = match text.parse::<u32>() {
            Ok(n) => Some((text.to_string(), Gid::from_raw(n))),
            Err(_) => Group::from_name(text)
                .ok()
                .flatten()
                .map(|g| (g.name, g.gid)),
        };
        found.ok_or_else(|| format!("no group {text:?} on this machine; pass a group name or gid"))
    }
    fn to_toml(value: &(String, Gid)) -> Option<toml::Value> {
        Some(value.0.clone().into())
    }
}

/// Peers trusted with `X-Forwarded-For`.
pub struct Peers;

impl Kind for Peers {
    type Value = ForwardedAllow;
    const VALUE_NAME: &'static str = "IPS";
    fn parse(text: &str) -> Result<ForwardedAllow, String> {
        text.parse().map_err(|e: NotAnAddress| e.to_string())
    }
    fn to_toml(value: &ForwardedAllow) -> Option<toml::Value> {
        Some(value.to_string().into())
    }
}

/// The access log's format.
pub struct AccessLogFormat;

impl Kind for AccessLogFormat {
    type Value = AccessFormat;
    const VALUE_NAME: &'static str = "FORMAT";
    fn parse(text: &str) -> Result<AccessFormat, String> {
        AccessFormat::parse(text).map_err(|e| e.to_string())
    }
    fn to_toml(value: &AccessFormat) -> Option<toml::Value> {
        Some(value.to_string().into())
    }
}

/// A log level.
pub struct LogLevel;

impl Kind for LogLevel {
    type Value = Level;
    const VALUE_NAME: &'static str = "LEVEL";
    fn parse(text: &str) -> Result<Level, String> {
        text.parse()
            .map_err(|e: serve_log::UnknownLevel| e.to_string())
    }
    fn to_toml(value: &Level) -> Option<toml::Value> {
        Some(value.to_string().into())
    }
}

/// `text` or `json`.
pub struct LogFormat;

impl Kind for LogFormat {
    type Value = Format;
    const VALUE_NAME: &'static str = "FORMAT";
    fn parse(text: &str) -> Result<Format, String> {
        match text {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "{other:?} is not a log format; expected text or json"
            )),
        }
    }
    fn to_toml(value: &Format) -> Option<toml::Value> {
        Some(
            match value {
                Format::Text => "text",
                Format::Json => "json",
            }
            .into(),
        )
    }
}

/// gunicorn's `--cert-reqs`: whether clients present certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    /// 0: none asked.
    None,
    /// 1: checked when sent.
    Optional,
    /// 2: required.
    Required,
}

/// `0`, `1` or `2` (ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED).
pub struct CertReqs;

impl Kind for CertReqs {
    type Value = ClientCerts;
    const VALUE_NAME: &'static str = "0|1|2";
    fn parse(text: &str) -> Result<ClientCerts, String> {
        match text.trim() {
            "0" => Ok(ClientCerts::None),
            "1" => Ok(ClientCerts::Optional),
            "2" => Ok(ClientCerts::Required),
            other => Err(format!(
                "{other:?}: expected 0 (no client certificate), 1 (checked if sent) or 2 \
                 (required), as gunicorn's --cert-reqs"
            )),
        }
    }
    fn to_toml(value: &ClientCerts) -> Option<toml::Value> {
        Some(toml::Value::Integer(match value {
            ClientCerts::None => 0,
            ClientCerts::Optional => 1,
            ClientCerts::Required => 2,
        }))
    }
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersionName {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

/// `1.2` or `1.3`.
pub struct TlsVersion;

impl Kind for TlsVersion {
    type Value = TlsVersionName;
    const VALUE_NAME: &'static str = "VERSION";
    fn parse(text: &str) -> Result<TlsVersionName, String> {
        match text.trim() {
            "1.2" => Ok(TlsVersionName::V1_2),
            "1.3" => Ok(TlsVersionName::V1_3),
            other => Err(format!(
                "{other:?}: expected 1.2 or 1.3 (older versions are not offered)"
            )),
        }
    }
    fn to_toml(value: &TlsVersionName) -> Option<toml::Value> {
        Some(
            match value {
                TlsVersionName::V1_2 => "1.2",
                TlsVersionName::V1_3 => "1.3",
            }
            .into(),
        )
    }
}

/// Cipher suite names, comma- or colon-separated (checked against the TLS library's list
/// where it is used).
pub struct Ciphers;

impl Kind for Ciphers {
    type Value = Vec<String>;
    const VALUE_NAME: &'static str = "SUITES";
    fn parse(text: &str) -> Result<Vec<String>, String> {
        let names: Vec<String> = text
            .split([',', ':'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err("no cipher suite named".into());
        }
        Ok(names)
    }
    fn to_toml(value: &Vec<String>) -> Option<toml::Value> {
        Some(value.join(",").into())
    }
}

/// Who decides which models of the repository are served (Triton's model control mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelControlMode {
    /// Every model APP holds; changed by editing the files and a reload (HUP).
    None,
    /// Only the models `--load-model` names and load requests ask for.
    Explicit,
}

/// `none` or `explicit`.
pub struct ModelControl;

impl Kind for ModelControl {
    type Value = ModelControlMode;
    const VALUE_NAME: &'static str = "MODE";
    fn parse(text: &str) -> Result<ModelControlMode, String> {
        match text {
            "none" => Ok(ModelControlMode::None),
            "explicit" => Ok(ModelControlMode::Explicit),
            other => Err(format!(
                "{other:?} is not a model control mode; expected none or explicit (Triton's \
                 poll mode is not offered: change the files, then HUP)"
            )),
        }
    }
    fn to_toml(value: &ModelControlMode) -> Option<toml::Value> {
        Some(
            match value {
                ModelControlMode::None => "none",
                ModelControlMode::Explicit => "explicit",
            }
            .into(),
        )
    }
}

/// The engines that run a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineName {
    /// tract: pure Rust, inside the binary.
    Tract,
    /// onnxruntime, loaded at run time from its library.
    OnnxRuntime,
}

impl EngineName {
    /// As settings and logs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineName::Tract => "tract",
            EngineName::OnnxRuntime => "onnxruntime",
        }
    }
}

impl std::fmt::Display for EngineName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `tract` or `onnxruntime`.
pub struct Engine;

impl Kind for Engine {
    type Value = EngineName;
    const VALUE_NAME: &'static str = "ENGINE";
    fn parse(text: &str) -> Result<EngineName, String> {
        match text {
            "tract" => Ok(EngineName::Tract),
            "onnxruntime" => Ok(EngineName::OnnxRuntime),
            other => Err(format!(
                "{other:?} is not an engine; expected tract or onnxruntime"
            )),
        }
    }
    fn to_toml(value: &EngineName) -> Option<toml::Value> {
        Some(value.as_str().into())
    }
}

/// A setting without a default: absent unless given.
pub struct Optional<K>(std::marker::PhantomData<K>);

impl<K: Kind> Kind for Optional<K> {
    type Value = Option<K::Value>;
    const VALUE_NAME: &'static str = K::VALUE_NAME;
    fn parse(text: &str) -> Result<Self::Value, String> {
        K::parse(text).map(Some)
    }
    fn to_toml(value: &Self::Value) -> Option<toml::Value> {
        value.as_ref().and_then(K::to_toml)
    }
    fn absent() -> Option<Self::Value> {
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_errors_say_what_is_expected() {
        assert_eq!(Size::parse("1M").unwrap(), 1 << 20);
        assert_eq!(Size::parse("1048576").unwrap(), 1 << 20);
        assert_eq!(Size::parse("2g").unwrap(), 2 << 30);
        assert!(Size::parse("1T").unwrap_err().contains("K, M or G"));
        assert_eq!(Seconds::parse("0.5").unwrap(), Duration::from_millis(500));
        assert!(Seconds::parse("abc").unwrap_err().contains("seconds"));
        assert!(Seconds::parse("-1").is_err());
        assert!(PositiveSeconds::parse("0").is_err());
        assert_eq!(Umask::parse("0o22").unwrap(), 0o22);
        assert_eq!(Umask::parse("022").unwrap(), 0o22);
        assert_eq!(Umask::parse("18").unwrap(), 18);
        assert!(AtLeastOne::parse("0").is_err());
        assert!(Switch::parse("yes").is_err());
    }
}
