//! The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0.
//!
//! They differ in three places a writer must know: OpenMetrics names a counter family without
//! its `_total` suffix (the sample keeps it), puts `# TYPE` before `# HELP`, and ends with
//! `# EOF`. Label values are escaped the same way in both (backslash, quote, newline).

use std::fmt::Write as _;

/// Which exposition a scrape asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, what Prometheus asks by default.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names it, else Prometheus.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The kind of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (its samples end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, count and sum.
    Histogram,
}

/// Writes metric families into a text buffer.
pub struct Writer {
    out: String,
    format: Format,
}

impl Writer {
    /// An empty exposition in `format`.
    pub fn new(format: Format) -> Writer {
        Writer {
            out: String::with_capacity(16 * 1024),
            format,
        }
    }

    /// Starts a family. `name` is the sample name for gauges and histograms, and the name
    /// with `_total` for counters.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let family = match (kind, self.format) {
            (Kind::Counter, Format::OpenMetrics) => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        match self.format {
            Format::Prometheus => {
                let _ = write!(self.out, "# HELP {family} {help}\n# TYPE {family} {kind}\n");
            }
            Format::OpenMetrics => {
                let _ = write!(self.out, "# TYPE {family} {kind}\n# HELP {family} {help}\n");
            }
        }
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram's samples: `counts` are per bucket (not cumulative) for `bounds` and then
    /// `+Inf`; `sum` is in the unit the family is named in.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let les: Vec<String> = bounds.iter().map(|b| float(*b)).collect();
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            let le = les.get(i).map_or("+Inf", String::as_str);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", le));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_count"), labels, cumulative);
        self.sample(&format!("{name}_sum"), labels, float(sum));
    }

    /// The finished exposition.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// A float as both formats accept it and OpenMetrics' parsers expect it: always with a
/// fractional part or an exponent (`1.0`, not `1`).
pub fn float(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E', 'N', 'n']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_without_total_in_openmetrics_only() {
        for (format, family) in [
            (Format::Prometheus, "# TYPE x_total counter"),
            (Format::OpenMetrics, "# TYPE x counter"),
        ] {
            let mut w = Writer::new(format);
            w.family("x_total", Kind::Counter, "Things.");
            w.sample("x_total", &[("a", "q\"\\\n")], 3);
            let text = w.finish();
            assert!(text.contains(family), "{text}");
            assert!(text.contains("x_total{a=\"q\\\"\\\\\\n\"} 3\n"), "{text}");
            assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let mut w = Writer::new(Format::Prometheus);
        w.histogram("h", &[("m", "x")], &[0.5, 1.0], &[1, 2, 3], 4.25);
        let text = w.finish();
        assert_eq!(
            text,
            "h_bucket{m=\"x\",le=\"0.5\"} 1\nh_bucket{m=\"x\",le=\"1.0\"} 3\n\
             h_bucket{m=\"x\",le=\"+Inf\"} 6\nh_count{m=\"x\"} 6\nh_sum{m=\"x\"} 4.25\n"
        );
    }

    #[test]
    fn accept_picks_openmetrics_only_when_named() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
    }
}
