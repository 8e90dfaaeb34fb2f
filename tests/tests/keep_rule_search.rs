//! The keep-rule search of `toprt-calibrate` (`calibrate/src/prune.rs`): it finds a
//! planted answer, never violates its MAC target (checked from the kept sets, not the
//! engine's own counter), is deterministic, and writes files that prune like any other.

use toprt::tokenize::Encoded;
use toprt::{Input, Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_calibrate::prune::{search_encoded, Choice, SearchOptions, Target};
use toprt_convert::checkpoint::TensorData;
use toprt_convert::synthetic;
use toprt_format::ModelConfig;

const LAYERS: usize = 4;

fn cfg() -> ModelConfig {
    ModelConfig {
        vocab_size: 200,
        hidden_size: 32,
        num_layers: LAYERS,
        num_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..synthetic::bert_base_config()
    }
}

/// A 4-layer classifier whose last layer's attention output weight is zero: the [CLS]
/// row's final state, and so the logits, cannot depend on the other tokens after layer
/// 2's attention. Pruning at location 3 (decided from layer 2's attention, applied
/// before its FFN) is therefore free, bit for bit; pruning anywhere earlier changes the
/// logits. The best schedule for a target that location 3 alone reaches is known.
fn planted() -> Vec<u8> {
    let c = cfg();
    let mut tensors = synthetic::random_bert(&c, 3, 21);
    let t = tensors
        .iter_mut()
        .find(|t| t.name == format!("encoder.layer.{}.attention.output.dense.weight", LAYERS - 1))
        .expect("the synthetic model names its tensors as BERT does");
    match &mut t.data {
        TensorData::F32(v) => v.fill(0.0),
        TensorData::Other(_) => unreachable!(),
    }
    synthetic::file_from_tensors(&c, 3, &tensors, "planted").unwrap()
}

/// `n` sequences of 12 to 60 random tokens, [CLS] first (id 1 stands in for it).
fn sequences(n: usize) -> Vec<Encoded> {
    let mut rng = synthetic::Rng::new(5);
    (0..n)
        .map(|i| {
            let len = 12 + (i * 13) % 49;
            let mut ids: Vec<u32> = (0..len).map(|_| 3 + (rng.uniform() * 190.0) as u32).collect();
            ids[0] = 1;
            Encoded { token_type_ids: vec![0; len], input_ids: ids, truncated: false }
        })
        .collect()
}

fn opts(target: f64) -> SearchOptions {
    SearchOptions { target: Target::MacReduction(target), batch: 8, threads: 2, ..Default::default() }
}

fn quiet(_: &str) {}

#[test]
fn the_planted_schedule_is_found() {
    let image = planted();
    let seqs = sequences(40);
    let out = search_encoded(&image, &seqs, &[], serde_json::json!({}), &opts(1.25), &mut quiet).unwrap();
    let c = &out.chosen;
    assert!(c.mac_reduction >= 1.25, "target missed: {}", c.mac_reduction);
    assert_eq!(&c.schedule[..LAYERS - 2], &[Choice::None; 2], "only the free location prunes: {:?}", c.schedule);
    assert_ne!(c.schedule[LAYERS - 2], Choice::None, "the free location prunes: {:?}", c.schedule);
    assert_eq!(c.loss, 0.0, "pruning at the free location changes no logit");
    assert_eq!(c.agreement, Some(1.0));
    // The front (the best schedules measured) is free up to the target: only the free
    // location prunes there. Past it, other locations join at a cost.
    for p in out.front.iter().filter(|p| p.mac_reduction <= c.mac_reduction) {
        assert_eq!(&p.schedule[..LAYERS - 2], &[Choice::None; 2], "{p:?}");
        assert_eq!(p.loss, 0.0, "{p:?}");
    }
    assert_eq!(out.front[0].mac_reduction, 1.0, "dense first");
    assert!(out.front.iter().any(|p| p.schedule == c.schedule), "the chosen schedule is on the front");
    for w in out.front.windows(2) {
        assert!(w[0].mac_reduction < w[1].mac_reduction && w[0].loss <= w[1].loss, "not a front: {w:?}");
    }
    // Uniform top-k at the same ratios prunes the other locations too, and loses.
    assert!(out.uniform.iter().all(|u| u.loss > 0.0), "uniform top-k cannot be free here");
}

/// The MAC reduction of `image` (with its keep-rules) on `seqs`, computed from the kept
/// sets the engine reports and the FLOPs model, not from its MAC counter.
fn mac_reduction_from_kept(image: &[u8], seqs: &[Encoded]) -> f64 {
    let model = Model::from_bytes(image, &OpenOptions::default()).unwrap();
    let mut s = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let m = model.manifest();
    let (mut dense, mut pruned) = (0.0, 0.0);
    for e in seqs {
        let out = s
            .run(&[Input::Ids { input_ids: &e.input_ids, token_type_ids: None }], Outputs::default())
            .unwrap()
            .remove(0);
        let n = e.input_ids.len();
        // The classifier reads only [CLS]: the last layer's FFN runs on it alone, dense
        // or pruned.
        let first = Outputs::default().first_token_only(m);
        let mut full = [(n, n); LAYERS];
        if first {
            full[LAYERS - 1].1 = 1;
        }
        dense += toprt::prune::encoder_macs(m, &full);
        let mut alive = n;
        let mut lengths = Vec::new();
        for l in 0..LAYERS {
            let attn = alive;
            if let Some((_, kept)) = out.kept.iter().find(|(loc, _)| *loc == l + 1) {
                alive = kept.len();
            }
            lengths.push((attn, alive));
        }
        if first {
            lengths[LAYERS - 1].1 = 1;
        }
        pruned += toprt::prune::encoder_macs(m, &lengths);
    }
    dense / pruned
}

#[test]
fn the_target_holds_on_the_calibration_text() {
    let image = synthetic::random_bert_file(&cfg(), 2, 8).unwrap();
    let seqs = sequences(48);
    for target in [1.2, 1.6, 2.2] {
        let out = search_encoded(&image, &seqs, &[], serde_json::json!({}), &opts(target), &mut quiet).unwrap();
        let got = mac_reduction_from_kept(&out.image, &seqs);
        assert!(got >= target, "target {target}: the written rules reach only {got}");
        assert!(
            (got - out.chosen.mac_reduction).abs() < 1e-9 * got,
            "{got} vs the search's {}",
            out.chosen.mac_reduction
        );
        // The front is ordered: each step saves MACs.
        for w in out.front.windows(2) {
            assert!(w[1].mac_reduction > w[0].mac_reduction);
        }
    }
}

#[test]
fn the_same_inputs_give_the_same_file() {
    let image = synthetic::random_bert_file(&cfg(), 2, 8).unwrap();
    let seqs = sequences(32);
    let a = search_encoded(&image, &seqs, &[], serde_json::json!({"run": 1}), &opts(1.5), &mut quiet).unwrap();
    let b = search_encoded(&image, &seqs, &[], serde_json::json!({"run": 1}), &opts(1.5), &mut quiet).unwrap();
    assert!(a.image == b.image, "two searches wrote different files");
    // A model that already has rules is searched from dense: its rules are replaced.
    let ruled = toprt_convert::writer::with_keep_rules(&image, synthetic::top_schedule(LAYERS, 1, 10, 0.5, 2)).unwrap();
    let c = search_encoded(&ruled, &seqs, &[], serde_json::json!({"run": 1}), &opts(1.5), &mut quiet).unwrap();
    assert!(c.image == a.image, "earlier keep-rules changed the search");
}

/// The written file prunes as any file with keep-rules does: a sequence alone and inside
/// a batch give the same logits and kept sets, bit for bit, on 1 and 2 threads; the
/// file says how its rules were made.
#[test]
fn the_written_file_prunes_like_any_other() {
    let image = synthetic::random_bert_file(&cfg(), 2, 8).unwrap();
    let seqs = sequences(24);
    let out =
        search_encoded(&image, &seqs, &[], serde_json::json!({"data": {"file": "x"}}), &opts(1.8), &mut quiet).unwrap();
    let model = Model::from_bytes(&out.image, &OpenOptions::default()).unwrap();
    let m = model.manifest();
    assert!(!m.keep_rules.is_empty());
    let rec = m.keep_rule_calibration.as_ref().expect("the search is recorded");
    assert_eq!(rec["target_mac_reduction"], 1.8);
    assert_eq!(rec["texts"], 24);
    let inputs: Vec<Input> =
        seqs.iter().map(|e| Input::Ids { input_ids: &e.input_ids, token_type_ids: None }).collect();
    let mut one = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let batch = one.run(&inputs, Outputs::default()).unwrap();
    let mut two = Session::new(&model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    assert_eq!(two.run(&inputs, Outputs::default()).unwrap(), batch, "1 vs 2 threads");
    for (i, x) in inputs.iter().enumerate() {
        let alone = one.run(std::slice::from_ref(x), Outputs::default()).unwrap().remove(0);
        assert_eq!(alone, batch[i], "sequence {i} alone vs in the batch");
        assert!(alone.kept.iter().all(|(_, k)| k.first() == Some(&0) && k.windows(2).all(|w| w[0] < w[1])));
    }
    // Dense runs of the written file equal the original's.
    let dense = Model::from_bytes(&image, &OpenOptions::default()).unwrap();
    let mut d = Session::new(&dense, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let want = d.run(&inputs, Outputs::default()).unwrap();
    let got = one.run_with(&inputs, Outputs::default(), PruneControl::DENSE).unwrap();
    assert_eq!(got, want, "pruning off gives the dense model");
}

#[test]
fn an_unreachable_target_says_what_is_reachable() {
    let image = synthetic::random_bert_file(&cfg(), 2, 8).unwrap();
    let seqs = sequences(16);
    let e = search_encoded(&image, &seqs, &[], serde_json::json!({}), &opts(50.0), &mut quiet)
        .err()
        .expect("50x is out of reach");
    let msg = e.to_string();
    assert!(msg.contains("out of reach") && msg.contains("best reached is"), "{msg}");
    let e = search_encoded(&image, &[], &[], serde_json::json!({}), &opts(1.5), &mut quiet).err().unwrap();
    assert!(e.to_string().contains("no calibration sequences"), "{e}");
    let e = search_encoded(&image, &seqs, &[], serde_json::json!({}), &opts(0.5), &mut quiet).err().unwrap();
    assert!(e.to_string().contains("above 1"), "{e}");
}

/// `labels`: accuracy on the labelled texts is reported and joins the objective; with
/// the dense model's own answers as labels it equals the agreement. Refused without
/// labels.
#[test]
fn labels_join_the_objective() {
    let image = synthetic::random_bert_file(&cfg(), 2, 8).unwrap();
    let seqs = sequences(32);
    let model = Model::from_bytes(&image, &OpenOptions::default()).unwrap();
    let mut s = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let labels: Vec<Option<usize>> = seqs
        .iter()
        .map(|e| {
            let out =
                s.run(&[Input::Ids { input_ids: &e.input_ids, token_type_ids: None }], Outputs::default()).unwrap();
            let l = out[0].logits.clone().unwrap();
            Some(usize::from(l[1] > l[0]))
        })
        .collect();
    let o = SearchOptions { labels: true, ..opts(1.6) };
    let out = search_encoded(&image, &seqs, &labels, serde_json::json!({}), &o, &mut quiet).unwrap();
    let c = &out.chosen;
    assert_eq!(c.accuracy, c.agreement, "labels = the dense answers: accuracy is agreement");
    assert_eq!(out.front[0].accuracy, Some(1.0));
    assert_eq!(out.record["labels_in_objective"], true);
    let e = search_encoded(&image, &seqs, &[], serde_json::json!({}), &o, &mut quiet).err().unwrap();
    assert!(e.to_string().contains("no calibration text has a label"), "{e}");
}
