//! Keep-rule search: which tokens to drop where, for a model that was never trained to
//! prune, from unlabeled text and a MAC budget.
//!
//! 1. **Teacher.** The dense model (in the file's own precision) runs the calibration
//!    text once; its outputs are the reference: logits for a classifier, the pooled
//!    embedding for an embedding model, else the final token states.
//! 2. **Candidates.** A schedule gives each prune location `1..num_layers` no rule, a
//!    top-k ratio (`KeepRule::TopK { ratio }`: keep that share of the alive tokens,
//!    ranked by the attention column sums the fused attention already computes) or an
//!    LTP-style threshold (`KeepRule::Threshold { theta, l_ref: 1 }`: keep the tokens
//!    whose column sum per head is at least `theta`, where 1 is the average token, so
//!    long sequences with spread-out attention lose more than short ones), so a schedule
//!    also says which layers prune at all. Each candidate runs the same text with its
//!    rules ([`toprt::Session::set_keep_rules`]): exact decisions, exact outputs.
//! 3. **Fidelity** to the teacher, averaged over the texts: the KL divergence of the
//!    class probabilities (classifiers, with top-1 agreement reported beside it),
//!    `1 − cosine` of the embeddings, or the relative error of the token states.
//! 4. **Cost**: the MACs the engine counts in the pass (docs/PRUNING.md's model, real
//!    per-sequence lengths, no padding), against the dense pass on the same text.
//! 5. **Search**: greedy descent from the dense schedule. Each step tries one step more
//!    pruning at each location (a location without a rule may start either kind; after
//!    that it keeps its kind: a ratio `step` lower, or a threshold `step` higher) and
//!    takes the move that loses the least fidelity per MAC saved, until the MAC
//!    reduction reaches the target, or (a speedup target) until the schedule, timed
//!    against dense on the calibration batches on this CPU, is that much faster.
//! 6. **Refinement**: a local search from where the greedy walk stopped. Each round tries
//!    giving one location a step back, alone or while another location takes a step
//!    more, and keeps the move that lowers the loss most within the target, until no
//!    move does. Uniform top-k (the same ratio everywhere) is measured on the same text.
//!    With a MAC target the schedule written is the best of every schedule measured
//!    (greedy candidates, refinement moves, uniform) that reaches it; the front reported
//!    is the Pareto set of all of them (MAC reduction against loss). Everything is
//!    deterministic: the same inputs give the same schedule.

use crate::data::{self, Text};

use crate::error::{Error, Result};
use serde_json::json;
use toprt::tokenize::Encoded;
use toprt::{Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_format::{KeepRule, LayerKeepRule, Pooling, Task};

/// What the search must reach on the calibration text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Dense MACs / pruned MACs (the engine's count, unpadded).
    MacReduction(f64),
    /// Dense time / pruned time of the calibration batches on this CPU, measured.
    Speedup(f64),
}

impl Target {
    fn value(self) -> f64 {
        match self {
            Target::MacReduction(x) | Target::Speedup(x) => x,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::MacReduction(_) => "MAC reduction",
            Target::Speedup(_) => "speedup",
        }
    }
}

/// How the search runs.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// The MAC reduction or speedup to reach.
    pub target: Target,
    /// Sequences per pass (packed, no padding).
    pub batch: usize,
    /// Threads of the session (0: one per logical CPU).
    pub threads: usize,
    /// How much a step lowers one location's ratio.
    pub step: f32,
    /// The lowest ratio a location may get.
    pub min_ratio: f32,
    /// How much a step raises one location's threshold (0: no threshold rules).
    pub threshold_step: f32,
    /// The highest threshold a location may get.
    pub max_threshold: f32,
    /// Classifiers: add the accuracy lost on the labelled texts (against the dense
    /// model's) to the objective.
    pub labels: bool,
    /// Rounds of local search after the greedy walk (0: none).
    pub refine_rounds: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            target: Target::MacReduction(1.5),
            batch: 32,
            threads: 0,
            step: 0.1,
            min_ratio: 0.1,
            threshold_step: 0.1,
            max_threshold: 2.0,
            labels: false,
            refine_rounds: 12,
        }
    }
}

/// What the fidelity to the teacher is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Class probabilities: mean KL(teacher ‖ schedule); top-1 agreement beside it.
    Logits,
    /// Pooled embeddings: mean `1 − cosine`.
    Embedding,
    /// Final token states: mean `‖h − h_teacher‖ / ‖h_teacher‖` per sequence.
    Hidden,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Logits => "kl",
            Objective::Embedding => "1-cosine",
            Objective::Hidden => "relative hidden-state error",
        }
    }
}

/// The rule one location gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Choice {
    None,
    /// Keep this share of the alive tokens (top-k).
    TopK(f32),
    /// Keep the tokens whose column sum per head is at least this (1 = average).
    Threshold(f32),
}

impl Choice {
    fn rule(self) -> Option<KeepRule> {
        match self {
            Choice::None => None,
            Choice::TopK(r) => Some(KeepRule::TopK { count: None, ratio: Some(r) }),
            Choice::Threshold(t) => Some(KeepRule::Threshold { theta: t, l_ref: 1 }),
        }
    }

    /// `none`, `top-k 0.8`, `threshold 0.3`.
    pub fn describe(self) -> String {
        match self {
            Choice::None => "none".into(),
            Choice::TopK(r) => format!("top-k {r}"),
            Choice::Threshold(t) => format!("threshold {t}"),
        }
    }
}

/// One schedule, measured on the calibration text.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The rule per location `1..num_layers` (index 0 = location 1).
    pub schedule: Vec<Choice>,
    /// Dense MACs / this schedule's MACs.
    pub mac_reduction: f64,
    /// The objective's mean loss (0 for the teacher itself).
    pub loss: f64,
    /// Classifiers: share of texts whose top-1 class equals the teacher's.
    pub agreement: Option<f64>,
    /// Embedding models: mean cosine to the teacher's embedding.
    pub cosine: Option<f64>,
    /// Classifiers with labelled texts: accuracy on them.
    pub accuracy: Option<f64>,
}

impl Point {
    /// The keep-rules of this schedule (locations with a ratio below 1).
    pub fn rules(&self) -> Vec<LayerKeepRule> {
        rules_of(&self.schedule)
    }

    /// The JSON of this point in the report.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "schedule": self.schedule.iter().map(|c| c.describe()).collect::<Vec<_>>(),
            "mac_reduction": round6(self.mac_reduction),
            "loss": round6(self.loss),
            "agreement": self.agreement.map(round6),
            "cosine": self.cosine.map(round6),
            "accuracy": self.accuracy.map(round6),
        })
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn rules_of(schedule: &[Choice]) -> Vec<LayerKeepRule> {
    schedule.iter().enumerate().filter_map(|(i, c)| c.rule().map(|rule| LayerKeepRule { layer: i + 1, rule })).collect()
}

/// The file with the found rules, and the search behind it.
pub struct SearchOutcome {
    pub image: Vec<u8>,
    pub objective: Objective,
    /// The schedule written.
    pub chosen: Point,
    /// The front found: dense first, then the Pareto set (MAC reduction against loss) of
    /// every schedule measured, by rising reduction.
    pub front: Vec<Point>,
    /// Uniform top-k at every ratio step, for comparison.
    pub uniform: Vec<Point>,
    /// The record written into the manifest.
    pub record: serde_json::Value,
}

/// The teacher's output for one text.
enum Reference {
    Logits(Vec<f64>),
    Embedding(Vec<f32>),
    Hidden(Vec<f32>),
}

/// Runs schedules on the calibration text and measures them against the teacher.
struct Evaluator {
    session: Session,
    batches: Vec<Vec<Encoded>>,
    want: Outputs,
    objective: Objective,
    teacher: Vec<Reference>,
    dense_macs: f64,
    /// Per text, its label (classifiers); `use_labels`: the objective counts them.
    labels: Vec<Option<usize>>,
    use_labels: bool,
    /// Labelled texts the dense model gets right.
    dense_correct: usize,
}

impl Evaluator {
    /// Runs `rules` over every batch: the outputs per text and the MACs of the passes.
    fn run(&mut self, rules: &[LayerKeepRule]) -> Result<(Vec<Reference>, f64)> {
        self.session.set_keep_rules(rules)?;
        let mut outs = Vec::new();
        let mut macs = 0.0;
        for b in &self.batches {
            let seqs = self.session.run_encoded_with(b.clone(), self.want, PruneControl::default())?;
            // One pass per batch (the session's token budget holds the largest batch).
            macs += self.session.layer_stats().iter().map(|s| s.macs).sum::<f64>();
            for s in seqs {
                outs.push(match self.objective {
                    Objective::Logits => Reference::Logits(softmax(s.logits.as_deref().unwrap_or(&[]))),
                    Objective::Embedding => Reference::Embedding(s.embedding.unwrap_or_default()),
                    Objective::Hidden => Reference::Hidden(s.last_hidden_state.unwrap_or_default()),
                });
            }
        }
        Ok((outs, macs))
    }

    /// Dense time over `schedule`'s time for all batches on this CPU: 5 rounds, dense
    /// and the schedule alternating (so a drift of the machine hits both), the median of
    /// the per-round ratios.
    fn speedup(&mut self, schedule: &[Choice]) -> Result<f64> {
        let rules = rules_of(schedule);
        let mut ratios = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            self.run(&[])?;
            let dense = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            self.run(&rules)?;
            ratios.push(dense / t.elapsed().as_secs_f64().max(1e-9));
        }
        ratios.sort_by(f64::total_cmp);
        Ok(ratios[ratios.len() / 2])
    }

    fn eval(&mut self, schedule: &[Choice]) -> Result<Point> {
        let (outs, macs) = self.run(&rules_of(schedule))?;
        let n = outs.len().max(1) as f64;
        let (mut loss, mut agree, mut cos) = (0.0, 0.0, 0.0);
        let (mut labelled, mut correct) = (0usize, 0usize);
        for ((o, t), label) in outs.iter().zip(&self.teacher).zip(&self.labels) {
            match (o, t) {
                (Reference::Logits(p), Reference::Logits(q)) => {
                    if let Some(y) = label {
                        labelled += 1;
                        correct += usize::from(argmax(p) == *y);
                    }
                    // KL(q ‖ p), q the teacher's probabilities.
                    loss += q
                        .iter()
                        .zip(p)
                        .map(|(&q, &p)| if q > 0.0 { q * (q / p.max(1e-300)).ln() } else { 0.0 })
                        .sum::<f64>();
                    agree += f64::from(argmax(p) == argmax(q));
                }
                (Reference::Embedding(e), Reference::Embedding(t)) => {
                    let c = cosine(e, t);
                    cos += c;
                    loss += 1.0 - c;
                }
                (Reference::Hidden(h), Reference::Hidden(t)) => {
                    let (mut num, mut den) = (0.0f64, 0.0f64);
                    for (&a, &b) in h.iter().zip(t) {
                        num += (f64::from(a) - f64::from(b)).powi(2);
                        den += f64::from(b).powi(2);
                    }
                    loss += (num / den.max(1e-30)).sqrt();
                }
                _ => unreachable!("one objective per search"),
            }
        }
        let accuracy = (labelled > 0).then(|| correct as f64 / labelled as f64);
        // With labels: the share of labelled texts lost against dense joins the loss.
        let lost = if self.use_labels && labelled > 0 {
            (self.dense_correct as f64 - correct as f64) / labelled as f64
        } else {
            0.0
        };
        Ok(Point {
            schedule: schedule.to_vec(),
            mac_reduction: self.dense_macs / macs.max(1.0),
            accuracy,
            loss: loss / n + lost,
            agreement: (self.objective == Objective::Logits).then_some(agree / n),
            cosine: (self.objective == Objective::Embedding).then_some(cos / n),
        })
    }
}

/// The dense schedule (`path[0]`), then the schedules of `seen` that no other one
/// matches or beats on both MAC reduction and loss, by rising MAC reduction.
fn pareto(mut seen: Vec<Point>, path: &[Point]) -> Vec<Point> {
    let dense = path[0].clone();
    seen.retain(|p| p.mac_reduction > dense.mac_reduction);
    // By rising reduction, the lower loss first at a tie; then keep each point whose loss
    // is below every point's of higher or equal reduction.
    seen.sort_by(|a, b| a.mac_reduction.total_cmp(&b.mac_reduction).then(a.loss.total_cmp(&b.loss)));
    let mut front: Vec<Point> = Vec::new();
    let mut best = f64::INFINITY;
    for p in seen.into_iter().rev() {
        if p.loss < best {
            best = p.loss;
            front.push(p);
        }
    }
    front.push(dense);
    front.reverse();
    front
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let m = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let e: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn argmax(p: &[f64]) -> usize {
    p.iter().enumerate().fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x).powi(2);
        bb += f64::from(y).powi(2);
    }
    if aa == 0.0 || bb == 0.0 {
        return f64::from(u8::from(aa == bb));
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// Searches keep-rules for the model `image` on `texts` (module docs) and returns the
/// image with the chosen rules (any earlier rules replaced). `data_facts` goes into the
/// record; `progress` gets a line per step.
///
/// # Errors
/// A bad option, data the tokenizer refuses, or a target no schedule reaches (the
/// message gives the best reduction reached).
pub fn search(
    image: &[u8],
    texts: &[Text],
    data_facts: serde_json::Value,
    opts: &SearchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<SearchOutcome> {
    let model = Model::from_bytes(image, &OpenOptions::default())?;
    let probe = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() })?;
    let encoded = data::encode(&probe, texts)?;
    let facts = json!({ "data": data_facts, "texts": texts.len(), "fingerprint": data::fingerprint(texts) });
    let labels: Vec<Option<usize>> = texts.iter().map(|t| t.label).collect();
    search_encoded(image, &encoded, &labels, facts, opts, progress)
}

/// [`search`] on sequences already tokenized (e.g. token ids for a model without a
/// tokenizer), with their labels (`labels[i]` for `encoded[i]`; an empty slice or
/// `None`s: unlabelled); `facts` (what the sequences are) goes into the record as it is.
///
/// # Errors
/// As [`search`].
pub fn search_encoded(
    image: &[u8],
    encoded: &[Encoded],
    labels: &[Option<usize>],
    facts: serde_json::Value,
    opts: &SearchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<SearchOutcome> {
    if encoded.is_empty() {
        return Err(Error::Options("no calibration sequences".into()));
    }
    let goal = opts.target.value();
    if !(goal.is_finite() && goal > 1.0) {
        return Err(Error::Options(format!("the {} target must be above 1, got {goal}", opts.target.name())));
    }
    if opts.batch == 0 {
        return Err(Error::Options("batch must be at least 1".into()));
    }
    if !(opts.step > 0.0 && opts.step < 1.0 && opts.min_ratio > 0.0 && opts.min_ratio < 1.0) {
        return Err(Error::Options("step and min_ratio must lie in (0, 1)".into()));
    }
    if !(opts.threshold_step >= 0.0 && opts.max_threshold.is_finite() && opts.max_threshold >= 0.0) {
        return Err(Error::Options("threshold_step and max_threshold must be non-negative".into()));
    }
    let model = Model::from_bytes(image, &OpenOptions::default())?;
    let m = model.manifest();
    let layers = m.model.num_layers;
    if layers < 2 {
        return Err(Error::Options(format!("a model of {layers} layer has no prune location")));
    }
    let objective = match (m.head.task, m.head.pooling) {
        (Task::Classification, _) => Objective::Logits,
        (_, Pooling::None) => Objective::Hidden,
        _ => Objective::Embedding,
    };
    let want = Outputs {
        logits: objective == Objective::Logits,
        embedding: objective == Objective::Embedding,
        hidden_states: objective == Objective::Hidden,
    };
    // Batches of the tokenized text; the token budget holds the largest batch, so every
    // batch is one pass and its layer statistics count all of it.
    let batches: Vec<Vec<Encoded>> = encoded.chunks(opts.batch).map(<[Encoded]>::to_vec).collect();
    let budget = batches.iter().map(|b| b.iter().map(|e| e.input_ids.len()).sum::<usize>()).max().unwrap_or(1);
    let tokens: usize = encoded.iter().map(|e| e.input_ids.len()).sum();
    let session = Session::new(
        &model,
        &SessionOptions {
            threads: opts.threads,
            max_tokens: budget.min(SessionOptions::MAX_TOKENS),
            ..Default::default()
        },
    )?;
    let labels: Vec<Option<usize>> = (0..encoded.len()).map(|i| labels.get(i).copied().flatten()).collect();
    let labelled = labels.iter().filter(|l| l.is_some()).count();
    if opts.labels && (objective != Objective::Logits || labelled == 0) {
        return Err(Error::Options(if objective == Objective::Logits {
            "--labels: no calibration text has a label".into()
        } else {
            "--labels: the model is not a classifier (it gives no logits to score)".into()
        }));
    }
    let mut ev = Evaluator {
        session,
        batches,
        want,
        objective,
        teacher: Vec::new(),
        dense_macs: 0.0,
        labels,
        use_labels: opts.labels,
        dense_correct: 0,
    };
    progress(&format!(
        "keep-rules: teacher pass (dense, {}) on {} sequences ({tokens} tokens), objective {}",
        model.precision(),
        encoded.len(),
        objective.name()
    ));
    let loss_name = if opts.labels { "kl + accuracy lost" } else { objective.name() };
    let (teacher, dense_macs) = ev.run(&[])?;
    ev.dense_correct = teacher
        .iter()
        .zip(&ev.labels)
        .filter(|(t, l)| matches!((t, l), (Reference::Logits(q), Some(y)) if argmax(q) == *y))
        .count();
    ev.teacher = teacher;
    ev.dense_macs = dense_macs;

    let locations = layers - 1;
    // Levels are whole steps (so repeated steps do not drift): a ratio `1 - s·step`, a
    // threshold `s·threshold_step`.
    let ratio_steps = ((1.0 - opts.min_ratio) / opts.step + 1e-4).floor() as u32;
    let threshold_steps =
        if opts.threshold_step > 0.0 { (opts.max_threshold / opts.threshold_step + 1e-4).floor() as u32 } else { 0 };
    let ratio = |s: u32| ((1.0 - s as f32 * opts.step) * 1e4).round() / 1e4;
    let theta = |s: u32| ((s as f32 * opts.threshold_step) * 1e4).round() / 1e4;
    // Per location: (kind, steps) with kind 0 = none, 1 = top-k, 2 = threshold.
    let mut state = vec![(0u8, 0u32); locations];
    let choice = |(kind, s): (u8, u32)| match kind {
        1 => Choice::TopK(ratio(s)),
        2 => Choice::Threshold(theta(s)),
        _ => Choice::None,
    };
    // One step more pruning at a location: a location without a rule may start either
    // kind; after that it keeps its kind.
    let more = |st: (u8, u32)| -> Vec<(u8, u32)> {
        match st {
            (0, _) => {
                let mut m = vec![(1, 1)];
                if threshold_steps > 0 {
                    m.push((2, 1));
                }
                m
            }
            (1, s) if s < ratio_steps => vec![(1, s + 1)],
            (2, s) if s < threshold_steps => vec![(2, s + 1)],
            _ => Vec::new(),
        }
    };
    let mut cur = ev.eval(&vec![Choice::None; locations])?;
    let mut front = vec![cur.clone()];
    // Every schedule measured: the front reported is the best of them.
    let mut seen = vec![cur.clone()];
    // With a speedup target, each accepted schedule is timed against dense (the speedup
    // can only come from saved MACs, so a schedule is timed once it saves some).
    let mut speedup = 1.0;
    let reached = |p: &Point, speedup: f64| match opts.target {
        Target::MacReduction(x) => p.mac_reduction >= x,
        Target::Speedup(x) => speedup >= x,
    };
    while !reached(&cur, speedup) {
        let mut best: Option<(f64, usize, (u8, u32), Point)> = None;
        for l in 0..locations {
            for mv in more(state[l]) {
                let mut next = state.clone();
                next[l] = mv;
                let schedule: Vec<Choice> = next.iter().map(|&st| choice(st)).collect();
                let p = ev.eval(&schedule)?;
                seen.push(p.clone());
                let saved = (1.0 / cur.mac_reduction) - (1.0 / p.mac_reduction);
                if saved <= 0.0 {
                    continue; // no MAC saved on this text (e.g. sequences too short to lose a token)
                }
                let score = (p.loss - cur.loss).max(0.0) / saved;
                if best.as_ref().is_none_or(|(b, _, _, _)| score < *b) {
                    best = Some((score, l, mv, p));
                }
            }
        }
        let Some((_, l, mv, p)) = best else {
            let best = match opts.target {
                Target::MacReduction(_) => cur.mac_reduction,
                Target::Speedup(_) => speedup,
            };
            return Err(Error::Options(format!(
                "{} {goal:.2}x is out of reach on this text: the best reached is {best:.2}x (every location at \
                 its last step, or saving nothing more)",
                opts.target.name()
            )));
        };
        state[l] = mv;
        if let Target::Speedup(_) = opts.target {
            speedup = ev.speedup(&p.schedule)?;
        }
        progress(&format!(
            "keep-rules: step {}: location {} -> {}: MAC reduction {:.3}x{}, {} {:.5}{}",
            front.len(),
            l + 1,
            choice(mv).describe(),
            p.mac_reduction,
            if let Target::Speedup(_) = opts.target {
                format!(" (measured speedup {speedup:.3}x)")
            } else {
                String::new()
            },
            loss_name,
            p.loss,
            match (p.agreement, p.cosine) {
                (Some(a), _) if p.accuracy.is_some() => {
                    format!(", agreement {:.2}%, accuracy {:.2}%", 100.0 * a, 100.0 * p.accuracy.unwrap_or(0.0))
                }
                (Some(a), _) => format!(", agreement {:.2}%", 100.0 * a),
                (_, Some(c)) => format!(", cosine {c:.5}"),
                _ => String::new(),
            }
        ));
        cur = p;
        front.push(cur.clone());
    }
    // Local search from where the greedy walk stopped: it commits to one location per
    // step, so its last steps may spend MACs where an earlier choice would now do
    // better. Each round tries giving one location a step back, alone or while another
    // takes a step more, and keeps the move that lowers the loss most within the target
    // (a speedup target: within the MACs of the schedule it measured), until none does.
    let floor = match opts.target {
        Target::MacReduction(x) => x,
        Target::Speedup(_) => cur.mac_reduction,
    };
    let greedy = cur.clone();
    let fewer = |(kind, s): (u8, u32)| match (kind, s) {
        (0, _) => None,
        (_, 1) => Some((0, 0)),
        (k, s) => Some((k, s - 1)),
    };
    for round in 0..opts.refine_rounds {
        let mut best: Option<(Vec<(u8, u32)>, Point)> = None;
        for l in 0..locations {
            let Some(back) = fewer(state[l]) else { continue };
            let mut tries = vec![None];
            tries.extend(
                (0..locations).filter(|&j| j != l).flat_map(|j| more(state[j]).into_iter().map(move |m| Some((j, m)))),
            );
            for t in tries {
                let mut next = state.clone();
                next[l] = back;
                if let Some((j, m)) = t {
                    next[j] = m;
                }
                let p = ev.eval(&next.iter().map(|&st| choice(st)).collect::<Vec<_>>())?;
                seen.push(p.clone());
                let better = best.as_ref().map_or(cur.loss, |(_, b)| b.loss);
                if p.mac_reduction >= floor && p.loss < better {
                    best = Some((next, p));
                }
            }
        }
        let Some((next, p)) = best else { break };
        progress(&format!(
            "keep-rules: refine {}: {}: MAC reduction {:.3}x, {loss_name} {:.5} (was {:.5})",
            round + 1,
            p.schedule.iter().map(|c| c.describe()).collect::<Vec<_>>().join(", "),
            p.mac_reduction,
            p.loss,
            cur.loss
        ));
        (state, cur) = (next, p);
    }
    // A speedup target holds only as measured: a refined schedule is timed, and the
    // greedy one kept if it falls short.
    if let (Target::Speedup(_), false) = (opts.target, cur == greedy) {
        let measured = ev.speedup(&cur.schedule)?;
        if measured >= goal {
            speedup = measured;
        } else {
            progress(&format!("keep-rules: the refined schedule measured {measured:.3}x: keeping the greedy one"));
            cur = greedy;
        }
    }
    let mut uniform = Vec::new();
    for s in 1..=ratio_steps {
        let p = ev.eval(&vec![Choice::TopK(ratio(s)); locations])?;
        let stop = p.mac_reduction >= cur.mac_reduction * 1.25;
        uniform.push(p);
        if stop {
            break;
        }
    }
    progress(&format!("keep-rules: uniform top-k measured at {} ratios for comparison", uniform.len()));
    // With a MAC target, the schedule written is the best of every one measured that
    // reaches it (uniform top-k included): the least loss, then the most reduction.
    if let Target::MacReduction(x) = opts.target {
        let best = seen
            .iter()
            .chain(&uniform)
            .filter(|p| p.mac_reduction >= x)
            .min_by(|a, b| a.loss.total_cmp(&b.loss).then(b.mac_reduction.total_cmp(&a.mac_reduction)));
        if let Some(b) = best.filter(|b| b.loss < cur.loss || b.loss == cur.loss && b.mac_reduction > cur.mac_reduction)
        {
            progress(&format!(
                "keep-rules: a schedule measured on the way loses less: {}",
                b.schedule.iter().map(|c| c.describe()).collect::<Vec<_>>().join(", ")
            ));
            cur = b.clone();
        }
    }
    seen.extend(uniform.iter().cloned());
    let front = pareto(seen, &front);
    let chosen = cur;
    let mut record = json!({
        "method": "greedy search of top-k ratios and thresholds against the dense teacher, then local search",
        "texts": encoded.len(),
        "tokens": tokens,
        "teacher": format!("dense, {}", model.precision()),
        "objective": loss_name,
        "target_mac_reduction": match opts.target { Target::MacReduction(x) => Some(x), Target::Speedup(_) => None },
        "target_speedup": match opts.target { Target::Speedup(x) => Some(x), Target::MacReduction(_) => None },
        "speedup": match opts.target { Target::Speedup(_) => Some(round6(speedup)), Target::MacReduction(_) => None },
        "mac_reduction": round6(chosen.mac_reduction),
        "loss": round6(chosen.loss),
        "agreement": chosen.agreement.map(round6),
        "accuracy": chosen.accuracy.map(round6),
        "labels_in_objective": opts.labels,
        "cosine": chosen.cosine.map(round6),
        "batch": opts.batch,
        "step": opts.step,
        "min_ratio": opts.min_ratio,
        "threshold_step": opts.threshold_step,
        "max_threshold": opts.max_threshold,
    });
    if let (Some(r), serde_json::Value::Object(f)) = (record.as_object_mut(), facts) {
        r.extend(f);
    }
    let image = toprt_convert::writer::with_calibrated_keep_rules(image, chosen.rules(), Some(record.clone()))?;
    Ok(SearchOutcome { image, objective, chosen, front, uniform, record })
}
