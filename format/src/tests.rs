//! Round trips of the encoder and decoder, and the refusals a reader relies on.

use crate::image::{self, Blob};
use crate::*;

fn config() -> ModelConfig {
    ModelConfig {
        arch: Arch::Bert,
        vocab_size: 10,
        hidden_size: 4,
        num_layers: 2,
        num_heads: 2,
        intermediate_size: 8,
        max_position_embeddings: 16,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        pad_token_id: 0,
        position_offset: 0,
        embedding_size: None,
        relative_attention_buckets: None,
        norm_first: false,
        gated_ffn: false,
        rotary: None,
        local_attention: None,
        disentangled: None,
    }
}

fn manifest() -> Manifest {
    Manifest {
        format_version: 0,
        producer: "format tests".into(),
        model: config(),
        head: HeadConfig {
            task: Task::Encoder,
            pooling: Pooling::None,
            normalize: false,
            classifier: None,
            num_labels: 0,
            id2label: Vec::new(),
        },
        tokenizer: None,
        keep_rules: vec![LayerKeepRule { layer: 1, rule: KeepRule::TopK { count: Some(2), ratio: None } }],
        ignored_tensors: Vec::new(),
        source: serde_json::Value::Null,
        quantization: None,
        keep_rule_calibration: None,
        tensors: Vec::new(),
    }
}

/// A stand-in for the kernels' sizes: a packed `[k, n]` takes `k · n` words.
fn packed(_: Layout, k: usize, n: usize) -> Option<u64> {
    k.checked_mul(n)?.checked_mul(4).map(|b| b as u64)
}

fn image() -> (Vec<u8>, Vec<Vec<u8>>) {
    let a: Vec<u8> = (0..12u8).collect(); // row-major f32 [3]
    let b: Vec<u8> = (0..24u8).map(|x| x ^ 0x5a).collect(); // panel32 f32 [2, 3]
    let blobs = [
        Blob { name: "a", dtype: Precision::F32, shape: &[3], layout: Layout::RowMajor, bytes: &a },
        Blob { name: "b", dtype: Precision::F32, shape: &[2, 3], layout: Layout::Panel32, bytes: &b },
    ];
    (image::encode(manifest(), &blobs).unwrap(), vec![a, b])
}

#[test]
fn encode_then_decode_gives_the_blobs_back() {
    let (bytes, blobs) = image();
    let img = image::decode(&bytes, true, &packed).unwrap();
    assert_eq!(img.manifest.format_version, FORMAT_VERSION);
    assert_eq!(img.manifest.tensors.len(), 2);
    for (t, want) in img.manifest.tensors.iter().zip(&blobs) {
        assert_eq!(t.offset % ALIGN as u64, 0, "{}", t.name);
        assert_eq!(img.blob(t), &want[..], "{}", t.name);
    }
    assert_eq!(img.header.data_offset % ALIGN as u64, 0);
    assert_eq!(img.header.data_offset + img.header.data_len, bytes.len() as u64);
    // Deterministic: the same input gives the same bytes.
    assert_eq!(image().0, bytes);
}

#[test]
fn split_is_the_inverse_of_assemble() {
    let (bytes, _) = image();
    let (m, d) = image::split(&bytes).unwrap();
    assert_eq!(image::assemble(m, d), bytes);
}

#[test]
fn header_round_trips_and_refuses_lies() {
    let (bytes, _) = image();
    let h = Header::parse(&bytes).unwrap();
    assert_eq!(&h.to_bytes()[..], &bytes[..HEADER_LEN]);
    assert!(matches!(Header::parse(&bytes[..HEADER_LEN - 1]), Err(Error::Format(m)) if m.contains("shorter")));
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(matches!(Header::parse(&b), Err(Error::Format(m)) if m.contains("bad magic")));
    let lie = Header { version: FORMAT_VERSION + 1, ..h };
    let b = [&lie.to_bytes()[..], &bytes[HEADER_LEN..]].concat();
    assert_eq!(Header::parse(&b), Err(Error::Version { found: FORMAT_VERSION + 1, supported: FORMAT_VERSION }));
    let lie = Header { data_len: h.data_len + 1, ..h };
    let b = [&lie.to_bytes()[..], &bytes[HEADER_LEN..]].concat();
    assert!(matches!(Header::parse(&b), Err(Error::Format(m)) if m.contains("truncated or padded")));
}

#[test]
fn repair_header_makes_checksums_agree_again() {
    let (bytes, _) = image();
    let h = Header::parse(&bytes).unwrap();
    let mut b = bytes.clone();
    let at = b.windows(12).position(|w| w == b"format tests").unwrap();
    b[at] = b'F'; // still valid JSON, another CRC
    b.extend_from_slice(&[0; 64]); // data_len now wrong
    assert!(image::decode(&b, true, &packed).is_err());
    image::repair_header(&mut b);
    let img = image::decode(&b, true, &packed).unwrap();
    assert_eq!(img.header.data_len, h.data_len + 64);
}

#[test]
fn decode_names_the_tensor_at_fault() {
    let (bytes, _) = image();
    let flip = |f: &dyn Fn(&mut Manifest)| {
        let (m, d) = image::split(&bytes).unwrap();
        let mut manifest: Manifest = serde_json::from_slice(m).unwrap();
        f(&mut manifest);
        image::decode(&image::assemble(&serde_json::to_vec(&manifest).unwrap(), d), true, &packed)
            .unwrap_err()
            .to_string()
    };
    let e = flip(&|m| m.tensors[1].length += 4);
    assert!(e.contains("tensor 'b'") && e.contains("need 24"), "{e}");
    let e = flip(&|m| m.tensors[1].offset = 1);
    assert!(e.contains("tensor 'b'") && e.contains("aligned"), "{e}");
    let e = flip(&|m| m.tensors[0].dtype = Precision::Bf16);
    assert!(e.contains("tensor 'a'") && e.contains("cannot have"), "{e}");
    let e = flip(&|m| m.tensors[1].shape = vec![6]);
    assert!(e.contains("tensor 'b'") && e.contains("2-D"), "{e}");
    let e = flip(&|m| m.tensors[1].name = "a".into());
    assert!(e.contains("appears twice"), "{e}");
    let e = flip(&|m| m.tensors[0].crc32 ^= 1);
    assert!(e.contains("checksum mismatch in tensor 'a'"), "{e}");
    let e = flip(&|m| m.keep_rules[0].layer = 2);
    assert!(e.contains("keep-rule at layer 2"), "{e}");
}

#[test]
fn precision_names_parse_back() {
    for p in Precision::ALL {
        assert_eq!(p.name().parse::<Precision>(), Ok(p));
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.name()));
    }
    assert_eq!(
        "fp16".parse::<Precision>().unwrap_err().to_string(),
        "unknown dtype 'fp16' (expected f32, bf16 or int8)"
    );
}
