//! speedup.svg: speedup of conveyor against per-request latency, one line
//! per workload, one panel per storage mode (log scale; 1x marked).

use crate::cases::Case;
use crate::results::Results;
use crate::run::Variant;
use crate::target::Mode;
use plotters::prelude::*;
use std::path::Path;

type Series = (Case, Vec<(f64, f64)>);

fn series(r: &Results, mode: Mode) -> Vec<Series> {
    let lats = r.latencies(mode);
    Case::ALL
        .into_iter()
        .map(|c| {
            let pts = lats
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let s = r.target(mode, *l)?.speedup(c, Variant::Conveyor)?;
                    Some((i as f64, s))
                })
                .collect::<Vec<_>>();
            (c, pts)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

fn colour(c: Case) -> RGBColor {
    let i = Case::ALL.iter().position(|x| *x == c).unwrap_or(0);
    [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(0, 0, 0),
    ][i % 11]
}

/// Writes the plot; panels for the modes with latencies measured.
pub fn svg(r: &Results, path: &Path) -> Result<(), String> {
    let modes: Vec<Mode> = [Mode::Page, Mode::Direct]
        .into_iter()
        .filter(|m| !series(r, *m).is_empty())
        .collect();
    if modes.is_empty() {
        return Ok(());
    }
    let all: Vec<f64> = modes
        .iter()
        .flat_map(|m| series(r, *m))
        .flat_map(|(_, p)| p.into_iter().map(|(_, y)| y))
        .collect();
    let lo = all.iter().copied().fold(0.5, f64::min) / 1.5;
    let hi = all.iter().copied().fold(2.0, f64::max) * 1.5;
    let width = 560 * modes.len() as u32;
    let root = SVGBackend::new(path, (width, 520)).into_drawing_area();
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let panels = root.split_evenly((1, modes.len()));
    for (area, mode) in panels.iter().zip(&modes) {
        let lats = r.latencies(*mode);
        let n = lats.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("conveyor speedup, {}", mode.label()),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.3f64..(n - 0.7), (lo..hi).log_scale())
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_labels(lats.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < lats.len() {
                    format!("{} ms", lats[i as usize])
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{y}x"))
            .x_desc("latency per request")
            .y_desc("speedup (without / with conveyor)")
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(
                vec![(-0.3, 1.0), (n - 0.7, 1.0)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
        for (c, pts) in series(r, *mode) {
            let col = colour(c);
            chart
                .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(c.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, col.filled())))
                .map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))
}
