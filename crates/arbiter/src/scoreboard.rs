//! The scoreboard: one shared anonymous mapping with a [`Slot`] per worker.
//!
//! Mapped once by the master before the first fork; every worker inherits the mapping and
//! writes its own slot, the master reads them all. The mapping lives as long as the master.

use std::io;
use std::num::NonZeroUsize;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use serve_worker::Slot;

/// Most workers a master can run at once (TTIN stops there).
pub const CAPACITY: usize = 1024;

/// The slots, shared with every worker.
pub struct Scoreboard {
    slots: &'static [Slot],
    used: Vec<bool>,
}

impl Scoreboard {
    /// Maps the scoreboard.
    pub fn new() -> io::Result<Scoreboard> {
        let len = CAPACITY * std::mem::size_of::<Slot>();
        let len = NonZeroUsize::new(len).expect("the scoreboard is not empty");
        // SAFETY: a fresh anonymous mapping aliases nothing; its result is checked.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(io::Error::from)?;
        // SAFETY: the mapping is page-aligned (more than Slot's 128-byte alignment), `len`
        // bytes long (exactly CAPACITY slots), zero-filled (a valid value for every atomic
        // field of Slot), only ever accessed through atomics, and never unmapped, so the
        // 'static lifetime holds for the life of the process and of its forked children.
        let slots = unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<Slot>(), CAPACITY) };
        Ok(Scoreboard {
            slots,
            used: vec![false; CAPACITY],
        })
    }

    /// Takes a free slot for a new worker.
    pub fn claim(&mut self, generation: u64) -> Option<(usize, &'static Slot)> {
        let i = self.used.iter().position(|u| !u)?;
        self.used[i] = true;
        let slot = &self.slots[i];
        slot.claim(generation);
        Some((i, slot))
    }

    /// Gives a dead worker's slot back.
    pub fn release(&mut self, i: usize) {
        self.slots[i].release();
        self.used[i] = false;
    }

    /// A slot by index.
    pub fn slot(&self, i: usize) -> &'static Slot {
        &self.slots[i]
    }
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
