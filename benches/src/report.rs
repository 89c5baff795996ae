//! Results of `joyride-bench`: one [`Cell`] per measured figure with its
//! kernel and Joyride samples, the targets, the table, the JSON and the
//! plot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::json;

use crate::net::Stack;
use crate::Stats;

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput, rates.
    Higher,
    /// Latency, CPU.
    Lower,
}

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Joyride / kernel at least this.
    RatioAtLeast(f64),
    /// Joyride / kernel at most this.
    RatioAtMost(f64),
    /// Joyride's own figure at most this (in the cell's unit).
    JoyrideAtMost(f64),
}

/// One measured figure, on both stacks.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Stable identifier (JSON key), e.g. `bulk.tx.128k`.
    pub id: String,
    /// Workload group, e.g. "1 bulk TCP (iperf3)".
    pub group: &'static str,
    /// What the row shows, e.g. "Joyride→kernel, 128 KB writes".
    pub label: String,
    /// Unit of the samples.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// The target, if the issue sets one.
    pub target: Option<Target>,
    /// One sample per run on the kernel stack.
    pub kernel: Vec<f64>,
    /// One sample per run on Joyride's stack.
    pub joyride: Vec<f64>,
}

impl Cell {
    /// The samples of `stack`.
    pub fn samples(&self, stack: Stack) -> &[f64] {
        match stack {
            Stack::Kernel => &self.kernel,
            Stack::Joyride => &self.joyride,
        }
    }

    /// Joyride / kernel of each run pair.
    pub fn ratios(&self) -> Vec<f64> {
        self.kernel
            .iter()
            .zip(&self.joyride)
            .filter(|(k, _)| **k != 0.0)
            .map(|(k, j)| j / k)
            .collect()
    }

    /// Whether the target is met (median of the runs), and by how much it
    /// is missed if not (as a fraction of the target).
    pub fn verdict(&self) -> Option<(bool, f64)> {
        let target = self.target?;
        match target {
            Target::RatioAtLeast(t) => {
                let r = median(&self.ratios())?;
                Some((r >= t, (t - r) / t))
            }
            Target::RatioAtMost(t) => {
                let r = median(&self.ratios())?;
                Some((r <= t, (r - t) / t))
            }
            Target::JoyrideAtMost(t) => {
                let j = Stats::of(&self.joyride).median;
                Some((j <= t, (j - t) / t))
            }
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            None => "-".into(),
            Some(Target::RatioAtLeast(t)) => format!("ratio ≥ {t}"),
            Some(Target::RatioAtMost(t)) => format!("ratio ≤ {t}"),
            Some(Target::JoyrideAtMost(t)) => format!("Joyride ≤ {} {}", fmt_num(t), self.unit),
        }
    }

    fn complete(&self) -> bool {
        !self.kernel.is_empty() && !self.joyride.is_empty()
    }
}

/// All cells of one benchmark run, in the order they were first recorded.
#[derive(Debug, Default)]
pub struct Report {
    /// The cells.
    pub cells: Vec<Cell>,
}

impl Report {
    /// Records one sample. The first call for `id` defines the cell.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        id: &str,
        group: &'static str,
        label: &str,
        unit: &'static str,
        better: Better,
        target: Option<Target>,
        stack: Stack,
        value: f64,
    ) {
        let i = match self.cells.iter().position(|c| c.id == id) {
            Some(i) => i,
            None => {
                self.cells.push(Cell {
                    id: id.to_string(),
                    group,
                    label: label.to_string(),
                    unit,
                    better,
                    target,
                    kernel: Vec::new(),
                    joyride: Vec::new(),
                });
                self.cells.len() - 1
            }
        };
        match stack {
            Stack::Kernel => self.cells[i].kernel.push(value),
            Stack::Joyride => self.cells[i].joyride.push(value),
        }
    }

    /// The cell `id`, if recorded.
    pub fn get(&self, id: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.id == id)
    }

    /// The Markdown table: median (min–max) of the runs per stack, the
    /// median of the per-run ratios, the target and the verdict.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| workload | figure | unit | kernel | Joyride | Joyride/kernel | target | verdict |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        let mut last_group = "";
        for c in self.cells.iter().filter(|c| c.complete()) {
            let group = if c.group == last_group { "" } else { c.group };
            last_group = c.group;
            let verdict = match c.verdict() {
                None => "-".to_string(),
                Some((true, _)) => "met".to_string(),
                Some((false, by)) => format!("missed by {:.0}%", by * 100.0),
            };
            let _ = writeln!(
                s,
                "| {group} | {} | {} | {} | {} | {} | {} | {verdict} |",
                c.label,
                c.unit,
                spread(&c.kernel),
                spread(&c.joyride),
                ratio_spread(&c.ratios()),
                c.target_text()
            );
        }
        s
    }

    /// Everything as JSON: per cell the samples and statistics of both
    /// stacks, the ratios, the target and whether it is met.
    pub fn json(&self, meta: serde_json::Value) -> serde_json::Value {
        let cells: Vec<_> = self
            .cells
            .iter()
            .filter(|c| c.complete())
            .map(|c| {
                let ratios = c.ratios();
                json!({
                    "id": c.id,
                    "workload": c.group,
                    "figure": c.label,
                    "unit": c.unit,
                    "higher_is_better": c.better == Better::Higher,
                    "kernel": Stats::of(&c.kernel).to_json(&c.kernel),
                    "joyride": Stats::of(&c.joyride).to_json(&c.joyride),
                    "ratio": (!ratios.is_empty()).then(|| Stats::of(&ratios).to_json(&ratios)),
                    "target": c.target_text(),
                    "target_met": c.verdict().map(|(ok, _)| ok),
                })
            })
            .collect();
        json!({ "meta": meta, "cells": cells })
    }

    /// Draws the plot: the Joyride/kernel ratio of every figure (coloured
    /// by target), bulk throughput against write size, and latency
    /// percentiles, as one SVG.
    pub fn plot(&self, path: &Path, bulk_sizes: &[usize]) -> anyhow::Result<()> {
        let root = SVGBackend::new(path, (1100, 1500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (top, bottom) = root.split_vertically(760);
        let (left, right) = bottom.split_horizontally(550);
        self.plot_ratios(&top)?;
        self.plot_bulk(&left, bulk_sizes)?;
        self.plot_latency(&right)?;
        root.present()
            .map_err(plot_err)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn plot_ratios<DB: DrawingBackend>(&self, area: &DrawingArea<DB, plotters::coord::Shift>) -> anyhow::Result<()> {
        let cells: Vec<&Cell> = self.cells.iter().filter(|c| c.complete()).collect();
        let n = cells.len().max(1);
        let ratios: Vec<f64> = cells.iter().map(|c| median(&c.ratios()).unwrap_or(0.0)).collect();
        // Log scale: 0.1 and 10 are the same distance from 1.
        let xmax = ratios.iter().copied().fold(2.0f64, f64::max).min(1000.0) * 1.5;
        let xmin = ratios
            .iter()
            .copied()
            .filter(|r| *r > 0.0)
            .fold(0.5f64, f64::min)
            .max(0.001)
            / 1.5;
        let labels: Vec<String> = cells
            .iter()
            .map(|c| format!("{} · {}", short_group(c.group), c.label))
            .collect();
        let mut chart = ChartBuilder::on(area)
            .caption("Joyride / kernel, same run (median of the runs)", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(420)
            .build_cartesian_2d((xmin..xmax).log_scale(), -0.5f64..(n as f64 - 0.5))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
                    labels[labels.len() - 1 - i as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| format!("{x}"))
            .x_desc("Joyride / kernel, log scale (latency, CPU: lower is better; rates: higher is better)")
            .draw()
            .map_err(plot_err)?;
        for (k, (c, r)) in cells.iter().zip(&ratios).enumerate() {
            let y = (n - 1 - k) as f64;
            let color = match c.verdict() {
                Some((true, _)) => RGBColor(60, 160, 80),
                Some((false, _)) => RGBColor(210, 70, 60),
                None => RGBColor(120, 140, 170),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(xmin, y - 0.35), (r.clamp(xmin, xmax), y + 0.35)],
                    color.filled(),
                )))
                .map_err(plot_err)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, -0.5), (1.0, n as f64 - 0.5)],
                BLACK.stroke_width(1),
            )))
            .map_err(plot_err)?;
        Ok(())
    }

    fn plot_bulk<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        sizes: &[usize],
    ) -> anyhow::Result<()> {
        let mut series = Vec::new();
        let mut ymax = 1.0f64;
        for (dir, dir_label) in [("tx", "Joyride→kernel"), ("rx", "kernel→Joyride")] {
            for stack in [Stack::Kernel, Stack::Joyride] {
                let pts: Vec<(f64, f64)> = sizes
                    .iter()
                    .filter_map(|&sz| {
                        let c = self.get(&bulk_id(dir, sz))?;
                        let v = c.samples(stack);
                        (!v.is_empty()).then(|| ((sz as f64 / 1024.0).log2(), Stats::of(v).median))
                    })
                    .collect();
                ymax = pts.iter().map(|p| p.1).fold(ymax, f64::max);
                let name = match stack {
                    Stack::Kernel => format!("kernel, data {}", dir_label.replace("Joyride", "ns A")),
                    Stack::Joyride => format!("Joyride, {dir_label}"),
                };
                series.push((name, stack, dir, pts));
            }
        }
        let xmax = sizes.iter().map(|&s| (s as f64 / 1024.0).log2()).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption("Bulk TCP (iperf3) against write size", ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.3f64..xmax + 0.3, 0f64..ymax * 1.15)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("write size (KiB)")
            .y_desc("Mbit/s")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_label_formatter(&|x| format!("{:.0}", 2f64.powf(*x)))
            .draw()
            .map_err(plot_err)?;
        for (name, stack, dir, pts) in series {
            let color = match (stack, dir) {
                (Stack::Kernel, "tx") => RGBColor(90, 90, 90),
                (Stack::Kernel, _) => RGBColor(170, 170, 170),
                (Stack::Joyride, "tx") => RGBColor(30, 100, 200),
                (Stack::Joyride, _) => RGBColor(230, 130, 20),
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }

    fn plot_latency<DB: DrawingBackend>(&self, area: &DrawingArea<DB, plotters::coord::Shift>) -> anyhow::Result<()> {
        let kinds = [
            ("rr.tcp.1", "TCP 1 B"),
            ("rr.tcp.1k", "TCP 1 KB"),
            ("rr.udp.64", "UDP 64 B"),
        ];
        let pcts = ["p50", "p99", "p999"];
        let mut series = Vec::new();
        let mut ymax = 1.0f64;
        for (id, name) in kinds {
            for stack in [Stack::Kernel, Stack::Joyride] {
                let pts: Vec<(f64, f64)> = pcts
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let c = self.get(&format!("{id}.{p}"))?;
                        let v = c.samples(stack);
                        (!v.is_empty()).then(|| (i as f64, Stats::of(v).median))
                    })
                    .collect();
                ymax = pts.iter().map(|p| p.1).fold(ymax, f64::max);
                series.push((
                    format!("{} {name}", if stack == Stack::Kernel { "kernel" } else { "Joyride" }),
                    stack,
                    id,
                    pts,
                ));
            }
        }
        let mut chart = ChartBuilder::on(area)
            .caption("Request/response latency percentiles", ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.2f64..2.2, (1f64..ymax * 2.0).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(3)
            .x_label_formatter(&|x| match x.round() as i64 {
                0 => "p50".into(),
                1 => "p99".into(),
                2 => "p99.9".into(),
                _ => String::new(),
            })
            .y_desc("µs (log)")
            .draw()
            .map_err(plot_err)?;
        for (name, stack, id, pts) in series {
            let base = match id {
                "rr.tcp.1" => RGBColor(30, 100, 200),
                "rr.tcp.1k" => RGBColor(40, 160, 90),
                _ => RGBColor(200, 80, 160),
            };
            let style = if stack == Stack::Kernel {
                base.mix(0.45).stroke_width(2)
            } else {
                base.stroke_width(3)
            };
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

/// The cell id of a bulk figure: direction `tx` (Joyride sends) or `rx`,
/// write size in bytes.
pub fn bulk_id(dir: &str, size: usize) -> String {
    format!("bulk.{dir}.{}k", size / 1024)
}

fn short_group(group: &str) -> &str {
    group.split_once(' ').map_or(group, |(n, _)| n)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e:?}")
}

/// A number with precision fit to its size.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn spread(v: &[f64]) -> String {
    let s = Stats::of(v);
    if v.len() == 1 {
        fmt_num(s.median)
    } else {
        format!("{} ({}–{})", fmt_num(s.median), fmt_num(s.min), fmt_num(s.max))
    }
}

/// The median of `v`, if it has samples.
fn median(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| Stats::of(v).median)
}

fn ratio_spread(v: &[f64]) -> String {
    if v.is_empty() {
        // The kernel's figure is zero (an idle program's CPU, say).
        return "-".into();
    }
    let s = Stats::of(v);
    if v.len() == 1 {
        format!("{:.2}", s.median)
    } else {
        format!("{:.2} ({:.2}–{:.2})", s.median, s.min, s.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(target: Target, better: Better, k: &[f64], j: &[f64]) -> Cell {
        Cell {
            id: "x".into(),
            group: "1 test",
            label: "x".into(),
            unit: "u",
            better,
            target: Some(target),
            kernel: k.to_vec(),
            joyride: j.to_vec(),
        }
    }

    #[test]
    fn verdicts() {
        let c = cell(
            Target::RatioAtLeast(1.0),
            Better::Higher,
            &[100.0, 100.0],
            &[80.0, 90.0],
        );
        let (ok, by) = c.verdict().unwrap();
        assert!(!ok);
        assert!((by - 0.15).abs() < 1e-9, "{by}");
        let c = cell(Target::RatioAtMost(1.2), Better::Lower, &[10.0], &[11.0]);
        assert!(c.verdict().unwrap().0);
        let c = cell(Target::JoyrideAtMost(2.0), Better::Lower, &[0.1], &[3.0]);
        let (ok, by) = c.verdict().unwrap();
        assert!(!ok && (by - 0.5).abs() < 1e-9);
    }

    #[test]
    fn table_and_json_skip_incomplete_cells() {
        let mut r = Report::default();
        r.record("a", "1 bulk", "tx", "Mbit/s", Better::Higher, None, Stack::Kernel, 10.0);
        r.record("a", "1 bulk", "tx", "Mbit/s", Better::Higher, None, Stack::Joyride, 5.0);
        r.record("b", "1 bulk", "rx", "Mbit/s", Better::Higher, None, Stack::Kernel, 10.0);
        let t = r.table();
        assert!(t.contains("| 1 bulk | tx | Mbit/s | 10.00 | 5.00 | 0.50 |"), "{t}");
        assert!(!t.contains("| rx |"), "{t}");
        let j = r.json(json!({}));
        assert_eq!(j["cells"].as_array().unwrap().len(), 1);
        assert_eq!(j["cells"][0]["ratio"]["median"], 0.5);
        // A kernel figure of zero: no ratio, the absolute target still judged.
        r.record(
            "c",
            "8 idle",
            "cpu",
            "%",
            Better::Lower,
            Some(Target::JoyrideAtMost(1.0)),
            Stack::Kernel,
            0.0,
        );
        r.record(
            "c",
            "8 idle",
            "cpu",
            "%",
            Better::Lower,
            Some(Target::JoyrideAtMost(1.0)),
            Stack::Joyride,
            0.5,
        );
        let t = r.table();
        assert!(
            t.contains("| 8 idle | cpu | % | 0.000 | 0.500 | - | Joyride ≤ 1.00 % | met |"),
            "{t}"
        );
    }
}
