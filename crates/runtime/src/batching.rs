//! The batching policy: whether rows should share an engine call, measured rather than assumed.
//!
//! Pure (no tokio, no engine): the runner asks [`Estimate::decide`] before each call and
//! reports each call to [`Estimate::observe`]; the table test below walks it through a model's
//! life.
//!
//! One-row calls run on the plan with the batch bound to 1, and the estimate keeps moving
//! averages of a one-row call and of the per-row cost of calls of several rows on the
//! general plan. For a small model a call's fixed cost dominates and merged rows are several
//! times cheaper; for a CNN the general plan costs more per row than one-row calls on the
//! single plan (tract's fast convolutions need concrete shapes), so merging stops, requests
//! run one at a time, and a request of several rows runs row by row. A call of several rows
//! is tried again after a hundred times its duration of other calls, so measuring costs
//! about 1% at most, and a merged call that measures (the first, or a retry) takes two rows
//! only, so it delays no more than one request by one call. Batching thus never runs slower
//! than one call per request, nor makes the slowest requests slower.

use std::time::Duration;

/// After a call of several rows that did not pay, the next try waits for this many times
/// its duration of other calls.
const RETRY_AFTER_CALLS_OF: u32 = 100;

/// The most rows a merged call takes while it measures whether merging pays.
const PROBE_ROWS: usize = 2;

/// How a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// One call of one row on the single plan (or the general one when there is none).
    Single,
    /// One call of all the rows on the general plan.
    Batched,
    /// One call per row on the single plan, outputs stacked.
    Rows,
}

/// What the policy decides for the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The most rows requests merged into one call may have together; 1: no merging.
    pub merge_up_to: usize,
    /// How a call of several rows runs when the plan allows both ways: [`Way::Batched`] or
    /// [`Way::Rows`].
    pub several_rows: Way,
}

/// What has been measured of one model: the time inside the engine (and stacking rows), wherever
/// the call ran, as moving averages.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Estimate {
    /// A one-row call, or a row of a request run row by row.
    single: Option<Duration>,
    /// Per row, a call of several rows on the general plan.
    batched: Option<Duration>,
    /// Time spent in calls so far.
    busy: Duration,
    /// The busy time after which calls of several rows are tried again, when they did not
    /// pay.
    retry_at: Duration,
    /// False: rows share a call whenever they can (tests, to be deterministic).
    measured: bool,
}

impl Estimate {
    /// Nothing known yet. `measured` false: never measure, always share calls.
    pub(crate) fn new(measured: bool) -> Estimate {
        Estimate {
            measured,
            ..Estimate::default()
        }
    }

    /// What the next call does, for a model that takes up to `max_batch_size` rows a call.
    pub(crate) fn decide(&self, max_batch_size: usize) -> Decision {
        let (merge_up_to, several_rows) = if !self.measured {
            (max_batch_size, Way::Batched)
        } else {
            match (self.batched, self.single) {
                // Unknown: a two-row probe.
                (None, _) => (PROBE_ROWS, Way::Batched),
                // A one-row call is measured before requests are merged again.
                (Some(_), None) => (1, Way::Batched),
                (Some(batched), Some(single)) if batched < single => (max_batch_size, Way::Batched),
                // Doubted, and due for another try.
                _ if self.busy >= self.retry_at => (PROBE_ROWS, Way::Batched),
                _ => (1, Way::Rows),
            }
        };
        Decision {
            merge_up_to: merge_up_to.min(max_batch_size).max(1),
            several_rows,
        }
    }

    /// Records a successful call of `rows` rows that took `took`.
    pub(crate) fn observe(&mut self, way: Way, rows: usize, took: Duration) {
        let per_row = took / u32::try_from(rows.max(1)).unwrap_or(u32::MAX);
        self.busy += took;
        match way {
            Way::Single | Way::Rows => self.single = Some(average(self.single, per_row)),
            Way::Batched if rows >= 2 => {
                let doubted = !self.pays_by_estimate();
                // A retry measures what the estimate is doubted for: it replaces it.
                self.batched = Some(if doubted {
                    per_row
                } else {
                    average(self.batched, per_row)
                });
                if !self.pays_by_estimate() {
                    self.retry_at = self.busy + took * RETRY_AFTER_CALLS_OF;
                }
            }
            Way::Batched => {}
        }
    }

    /// The expected duration of a call, when known.
    pub(crate) fn expected(&self, way: Way, rows: usize) -> Option<Duration> {
        let rows = u32::try_from(rows.max(1)).unwrap_or(u32::MAX);
        match way {
            Way::Single => self.single,
            Way::Rows => self.single.map(|d| d.saturating_mul(rows)),
            Way::Batched => self.batched.map(|d| d.saturating_mul(rows)),
        }
    }

    /// An estimate that says calls of several rows do not pay and will not be tried again
    /// for an hour of calls.
    #[cfg(test)]
    pub(crate) fn not_paying_for_an_hour() -> Estimate {
        Estimate {
            single: Some(Duration::from_nanos(1)),
            batched: Some(Duration::from_secs(1)),
            retry_at: Duration::from_secs(3600),
            ..Estimate::new(true)
        }
    }

    /// The estimates alone: calls of several rows cost less per row, or one is unknown.
    fn pays_by_estimate(&self) -> bool {
        match (self.batched, self.single) {
            (Some(batched), Some(single)) => batched < single,
            _ => true,
        }
    }
}

/// An exponential moving average weighing the newest measurement 1/8.
fn average(avg: Option<Duration>, new: Duration) -> Duration {
    match avg {
        None => new,
        Some(avg) => (avg * 7 + new) / 8,
    }
}

#[cfg(test)]
mod tests {
    use super::Way::{Batched, Rows, Single};
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A call the runner made: its way, its rows, its total milliseconds.
    type Call = (Way, usize, u64);

    #[test]
    fn decisions_follow_what_was_measured() {
        // Each row: a call the runner made (way, rows, total ms), then what the policy
        // decides for a model of up to 64 rows a call.
        #[rustfmt::skip]
        let life: &[(Option<Call>, usize, Way, &str)] = &[
            (None,                    2,  Batched, "nothing known: a two-row probe"),
            (Some((Batched, 2, 2)),   1,  Batched, "1 ms a row merged; a one-row call is measured next"),
            (Some((Single, 1, 3)),    64, Batched, "1 ms a row merged against 3 ms a call: the whole batch"),
            (Some((Batched, 1, 5)),   64, Batched, "a one-row call on the general plan is only busy time"),
            (Some((Batched, 2, 80)),  1,  Rows,    "40 ms a row brings the average to 5.9 ms: merging stops"),
            // The retry is due after 100 times that 80 ms call: at 90 + 8000 ms busy.
            (Some((Rows, 2000, 6000)), 1, Rows,    "3 ms a row, row by row; 6090 ms busy: not due yet"),
            (Some((Rows, 1000, 3000)), 2, Batched, "9090 ms busy: due, a two-row probe"),
            (Some((Batched, 2, 2)),   64, Batched, "the retry's 1 ms a row replaces the doubted 5.9 ms"),
            (Some((Batched, 4, 36)),  64, Batched, "9 ms a row averaged in: 2 ms, still below 3 ms"),
            (Some((Batched, 2, 40)),  1,  Rows,    "20 ms a row averaged in: 4.25 ms, merging stops again"),
        ];
        let mut e = Estimate::new(true);
        for (i, (call, merge_up_to, several_rows, why)) in life.iter().enumerate() {
            if let Some((way, rows, took)) = call {
                e.observe(*way, *rows, ms(*took));
            }
            let want = Decision {
                merge_up_to: *merge_up_to,
                several_rows: *several_rows,
            };
            assert_eq!(e.decide(64), want, "step {i}: {why}; {e:?}");
        }
    }

    #[test]
    fn the_batch_limit_caps_every_decision() {
        let mut e = Estimate::new(true);
        assert_eq!(
            e.decide(1).merge_up_to,
            1,
            "a probe takes no more than the model"
        );
        e.observe(Batched, 2, ms(2));
        e.observe(Single, 1, ms(3));
        assert_eq!(e.decide(8).merge_up_to, 8);
        assert_eq!(e.decide(0).merge_up_to, 1);
    }

    #[test]
    fn unmeasured_rows_always_share_a_call() {
        let mut e = Estimate::new(false);
        e.observe(Single, 1, ms(1));
        e.observe(Batched, 2, ms(100));
        let d = e.decide(64);
        assert_eq!((d.merge_up_to, d.several_rows), (64, Batched));
    }

    #[test]
    fn expected_durations_scale_with_rows() {
        let mut e = Estimate::new(true);
        assert_eq!(e.expected(Single, 1), None);
        e.observe(Single, 1, ms(2));
        e.observe(Batched, 4, ms(4));
        assert_eq!(e.expected(Single, 1), Some(ms(2)));
        assert_eq!(e.expected(Rows, 3), Some(ms(6)));
        assert_eq!(e.expected(Batched, 10), Some(ms(10)));
    }
}
