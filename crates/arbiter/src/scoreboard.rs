//! The scoreboard: one shared anonymous mapping with a [`Slot`] per worker, and another for
//! the metrics ([`serve_metrics::Region`]: a table of counters per slot and the retired ones).
//!
//! Mapped once by the master before the first fork; every worker inherits the mappings and
//! writes its own slot and table, the master reads them all. The mappings live as long as the
//! master.

use std::io;
use std::num::NonZeroUsize;

use std::sync::atomic::{AtomicU32, AtomicU64};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use serve_metrics::Region;
use serve_worker::Slot;
use serve_worker::scoreboard::Board;

/// Most workers a master can run at once (TTIN stops there).
pub const CAPACITY: usize = 1024;

/// The slots, shared with every worker.
pub struct Scoreboard {
    board: Board,
    used: Vec<bool>,
    metrics: Region,
}

impl Scoreboard {
    /// Maps the scoreboard and the metrics region.
    pub fn new() -> io::Result<Scoreboard> {
        // SAFETY: a Slot is atomics only, and all-zero is a valid Slot (State::Free).
        let slots = unsafe { shared::<Slot>(CAPACITY)? };
        // SAFETY: AtomicU32 is an atomic, valid at zero.
        let claimed = unsafe { shared::<AtomicU32>(1)? };
        // SAFETY: AtomicU64 is an atomic, valid at zero.
        let words = unsafe { shared::<AtomicU64>(Region::words_for(CAPACITY))? };
        Ok(Scoreboard {
            board: Board::new(slots, &claimed[0]),
            used: vec![false; CAPACITY],
            metrics: Region::new(words, CAPACITY),
        })
    }

    /// Takes a free slot for a new worker.
    pub fn claim(&mut self, generation: u64) -> Option<(usize, &'static Slot)> {
        let i = self.used.iter().position(|u| !u)?;
        self.used[i] = true;
        let slot = &self.board.all()[i];
        slot.claim(generation);
        self.board.cover(i);
        self.metrics.slot_claimed(i);
        Some((i, slot))
    }

    /// Gives a dead worker's slot back, its counters added to the retired ones first.
    pub fn release(&mut self, i: usize) {
        self.metrics.fold(i);
        self.board.all()[i].release();
        self.used[i] = false;
    }

    /// Every slot (what `/status` lists and the workers share connections by).
    pub fn board(&self) -> Board {
        self.board
    }

    /// The metrics region.
    pub fn metrics(&self) -> Region {
        self.metrics
    }

    /// A slot by index.
    pub fn slot(&self, i: usize) -> &'static Slot {
        &self.board.all()[i]
    }
}

/// A zeroed `MAP_SHARED` anonymous mapping of `n` values of `T`, never unmapped. Pages are
/// only backed once touched (`MAP_NORESERVE`): the metrics region is sized for every slot the
/// master could ever use, and a server uses a few.
///
/// # Safety
/// `T` must be valid when all-zero and made only of atomics (`Slot` and the atomics are), so
/// that processes sharing the memory never race on a plain value.
unsafe fn shared<T>(n: usize) -> io::Result<&'static [T]> {
    let len = n * std::mem::size_of::<T>();
    let len = NonZeroUsize::new(len).expect("the mapping is not empty");
    // SAFETY: a fresh anonymous mapping aliases nothing; its result is checked.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
        )
    }
    .map_err(io::Error::from)?;
    // SAFETY: the mapping is page-aligned (more than the 128-byte alignment of Slot and the
    // 4 or 8 of the atomics), `len` bytes long (exactly n values), zero-filled (valid for T,
    // as the caller promises), only ever accessed through atomics, and never unmapped, so
    // the 'static lifetime holds for the life of the process and of its forked children.
    Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<T>(), n) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serve_worker::State;

    #[test]
    fn claims_and_releases_zeroed_slots() {
        let mut board = Scoreboard::new().unwrap();
        let (i, slot) = board.claim(7).unwrap();
        assert_eq!((slot.generation(), slot.state()), (7, State::Booting));
        let (j, _) = board.claim(7).unwrap();
        assert_ne!(i, j);
        assert_eq!(board.board().in_use().len(), 2);
        board.release(i);
        assert_eq!(board.slot(i).state(), State::Free);
        assert_eq!(board.claim(8).unwrap().0, i);
    }

    #[test]
    fn a_child_writes_what_the_parent_reads() {
        let mut board = Scoreboard::new().unwrap();
        let (_, slot) = board.claim(1).unwrap();
        // SAFETY: the test process may have other threads (the test harness), but the child
        // only stores to an atomic and calls _exit, both async-signal-safe.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                slot.set_state(State::Ready);
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(slot.state(), State::Ready);
            }
        }
    }
}
