//! The keep-rule search's chart (`--report DIR`: `keep_rules.svg`): the front found
//! against uniform top-k on the same text, the chosen schedule marked.

use crate::prune::{Objective, Point, SearchOutcome};

/// An SVG chart of the front found and uniform top-k: fidelity (agreement, cosine or
/// `1 − loss`) against MAC reduction, the chosen schedule marked.
pub fn svg(outcome: &SearchOutcome) -> String {
    let y_of = |p: &Point| match outcome.objective {
        Objective::Logits => p.agreement.unwrap_or(0.0) * 100.0,
        Objective::Embedding => p.cosine.unwrap_or(0.0),
        Objective::Hidden => 1.0 - p.loss,
    };
    let y_name = match outcome.objective {
        Objective::Logits => "top-1 agreement with the dense model (%)",
        Objective::Embedding => "mean cosine to the dense embeddings",
        Objective::Hidden => "1 - relative hidden-state error",
    };
    let all: Vec<&Point> = outcome.front.iter().chain(&outcome.uniform).collect();
    let x_max = all.iter().map(|p| p.mac_reduction).fold(1.0f64, f64::max) * 1.05;
    let y_lo = all.iter().map(|p| y_of(p)).fold(f64::INFINITY, f64::min);
    let y_hi = all.iter().map(|p| y_of(p)).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y_hi - y_lo) * 0.08).max(1e-6);
    let (y0, y1) = (y_lo - pad, y_hi + pad);
    let (w, h, l, r, t, b) = (640.0, 400.0, 70.0, 20.0, 30.0, 50.0);
    let px = |x: f64| l + (x - 1.0) / (x_max - 1.0).max(1e-9) * (w - l - r);
    let py = |y: f64| t + (1.0 - (y - y0) / (y1 - y0)) * (h - t - b);
    let line = |pts: &[Point], color: &str| -> String {
        let coords: Vec<String> =
            pts.iter().map(|p| format!("{:.1},{:.1}", px(p.mac_reduction), py(y_of(p)))).collect();
        let dots: String = pts
            .iter()
            .map(|p| {
                format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    px(p.mac_reduction),
                    py(y_of(p))
                )
            })
            .collect();
        format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>{dots}", coords.join(" "))
    };
    let mut uniform = vec![outcome.front[0].clone()];
    uniform.extend(outcome.uniform.iter().cloned());
    let c = &outcome.chosen;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{l}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"black\"/>\n\
         <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{yb}\" stroke=\"black\"/>\n\
         <text x=\"{xm}\" y=\"{yl}\" text-anchor=\"middle\">MAC reduction (dense / pruned, calibration text)</text>\n\
         <text x=\"14\" y=\"{ym}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {ym})\">{y_name}</text>\n",
        yb = h - b,
        xr = w - r,
        xm = (w + l - r) / 2.0,
        yl = h - 12.0,
        ym = (h - b + t) / 2.0,
    );
    for i in 0..=4 {
        let x = 1.0 + (x_max - 1.0) * f64::from(i) / 4.0;
        let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x:.2}x</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{y:.4}</text>\n",
            px(x),
            h - b + 16.0,
            l - 6.0,
            py(y) + 4.0
        );
    }
    s += &line(&uniform, "#d62728");
    s += "\n";
    s += &line(&outcome.front, "#1f77b4");
    s += &format!(
        "\n<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>\n",
        px(c.mac_reduction),
        py(y_of(c))
    );
    s += &format!(
        "<text x=\"{x}\" y=\"{t}\" fill=\"#1f77b4\">searched (best measured)</text>\n<text x=\"{x}\" y=\"{t2}\" fill=\"#d62728\">uniform top-k</text>\n<text x=\"{x}\" y=\"{t3}\">o chosen: {:.2}x</text>\n</svg>\n",
        c.mac_reduction,
        x = w - r - 150.0,
        t = t + 14.0,
        t2 = t + 30.0,
        t3 = t + 46.0
    );
    s
}
