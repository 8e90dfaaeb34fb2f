//! Measures keep-rule schedules of a classifier on labelled text: for each schedule read
//! from standard input, the MAC reduction on that text (the engine's count, as
//! `toprt-calibrate` measures it), accuracy, top-1 agreement with the dense model and
//! the mean KL divergence from it. What the search can reach at best on a data set: run
//! it over a grid of schedules on held-out text (which the search itself never sees).
//!
//! ```sh
//! cargo run --release -p toprt-calibrate --example schedules -- MODEL.toprt DATA.tsv < schedules.txt
//! ```
//!
//! One schedule per line: `LOCATION:KIND:VALUE` entries separated by spaces, KIND `k` (a
//! top-k ratio), `c` (a top-k count) or `t` (an LTP threshold with `l_ref` 1), e.g.
//! `2:k:0.8 3:k:0.6 4:t:0.3`. An empty line is the dense model.

use std::path::Path;
use toprt::{Model, Outputs, PruneControl, Session, SessionOptions};
use toprt_calibrate::data;
use toprt_format::{KeepRule, LayerKeepRule};

type Failure = Box<dyn std::error::Error>;

/// One `LOCATION:KIND:VALUE` entry.
fn parse_rule(entry: &str) -> Result<LayerKeepRule, Failure> {
    let bad = || format!("`{entry}`: want LOCATION:KIND:VALUE with KIND k, c or t");
    let mut parts = entry.split(':');
    let (Some(layer), Some(kind), Some(value), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad().into());
    };
    let layer: usize = layer.parse().map_err(|_| bad())?;
    let rule = match kind {
        "k" => KeepRule::TopK { count: None, ratio: Some(value.parse().map_err(|_| bad())?) },
        "c" => KeepRule::TopK { count: Some(value.parse().map_err(|_| bad())?), ratio: None },
        "t" => KeepRule::Threshold { theta: value.parse().map_err(|_| bad())?, l_ref: 1 },
        _ => return Err(bad().into()),
    };
    Ok(LayerKeepRule { layer, rule })
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

fn softmax(v: &[f32]) -> Vec<f64> {
    let m = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let e: Vec<f64> = v.iter().map(|&x| (f64::from(x) - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// A schedule's measurements against the dense logits `teacher` (empty: this is the
/// dense pass, which fills it).
struct Measured {
    macs: f64,
    accuracy: f64,
    agreement: f64,
    kl: f64,
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, data] = &args[..] else {
        return Err("usage: schedules MODEL.toprt DATA (.tsv or .jsonl with labels) < schedules".into());
    };
    let model = Model::open(model)?;
    let texts = data::load(Path::new(data), None)?;
    let probe = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() })?;
    let encoded = data::encode(&probe, &texts)?;
    let mut session = Session::new(&model, &SessionOptions { max_tokens: 8192, ..Default::default() })?;
    let want = Outputs { logits: true, embedding: false, hidden_states: false };
    let mut teacher: Vec<Vec<f32>> = Vec::new();
    let mut run = |rules: &[LayerKeepRule], teacher: &mut Vec<Vec<f32>>| -> Result<Measured, Failure> {
        session.set_keep_rules(rules)?;
        let (mut macs, mut correct, mut labelled, mut agree, mut kl) = (0.0, 0usize, 0usize, 0usize, 0.0f64);
        let mut i = 0;
        for batch in encoded.chunks(64) {
            let outs = session.run_encoded_with(batch.to_vec(), want, PruneControl::default())?;
            macs += session.layer_stats().iter().map(|l| l.macs).sum::<f64>();
            for o in outs {
                let logits = o.logits.ok_or("the model gives no logits: it is not a classifier")?;
                if teacher.len() <= i {
                    teacher.push(logits.clone());
                }
                let pred = argmax(&logits);
                if let Some(y) = texts[i].label {
                    labelled += 1;
                    correct += usize::from(pred == y);
                }
                agree += usize::from(pred == argmax(&teacher[i]));
                let (q, p) = (softmax(&teacher[i]), softmax(&logits));
                kl += q
                    .iter()
                    .zip(&p)
                    .map(|(&q, &p)| if q > 0.0 { q * (q / p.max(1e-300)).ln() } else { 0.0 })
                    .sum::<f64>();
                i += 1;
            }
        }
        let n = texts.len().max(1) as f64;
        Ok(Measured {
            macs,
            accuracy: 100.0 * correct as f64 / labelled.max(1) as f64,
            agreement: 100.0 * agree as f64 / n,
            kl: kl / n,
        })
    };
    let dense = run(&[], &mut teacher)?;
    println!("dense: accuracy {:.2}% on {} texts", dense.accuracy, texts.len());
    for line in std::io::stdin().lines() {
        let line = line?;
        let rules = line.split_whitespace().map(parse_rule).collect::<Result<Vec<_>, _>>()?;
        let m = run(&rules, &mut teacher)?;
        println!(
            "{line:40} MAC reduction {:.3}x  accuracy {:.2}% ({:+.2})  agreement {:.2}%  kl {:.5}",
            dense.macs / m.macs.max(1.0),
            m.accuracy,
            m.accuracy - dense.accuracy,
            m.agreement,
            m.kl
        );
    }
    Ok(())
}
