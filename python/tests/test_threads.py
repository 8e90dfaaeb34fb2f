"""Several Python threads share one Model, a session each: the same results as one
thread, and the GIL is released while the engine runs."""

import sys
import threading

import numpy as np

import toprt


def test_four_threads_sharing_one_model(models, dev_texts):
    model = toprt.Model(models["minilm_pruned"])
    texts = dev_texts[:64]
    want = model.session(threads=1).run(texts).embeddings
    results, errors = {}, []

    def work(k):
        try:
            s = model.session(threads=1)
            # Each thread runs the texts in its own order and batch size.
            order = np.random.default_rng(k).permutation(len(texts))
            got = np.zeros_like(want)
            for start in range(0, len(texts), 5 + k):
                idx = order[start : start + 5 + k]
                got[idx] = s.run([texts[i] for i in idx]).embeddings
            results[k] = got
        except Exception as e:  # reported below, with the thread's number
            errors.append((k, e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]
    for k, got in results.items():
        assert np.array_equal(got, want), k
    # encode() from several threads at once takes a session each from the model's pool.
    enc = {}
    threads = [threading.Thread(target=lambda k=k: enc.__setitem__(k, model.encode(texts))) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        assert np.array_equal(enc[k], want), k


def test_gil_released_while_running(models, dev_texts):
    """While one thread is inside Session.run, another Python thread keeps running."""
    session = toprt.Model(models["minilm"]).session(threads=1)
    texts = dev_texts * 2  # long enough that the call lasts well beyond a switch interval
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        session.run(texts)
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        spins = 0
        while not done.is_set():
            spins += 1
        t.join()
    finally:
        sys.setswitchinterval(old)
    # Had the GIL been held, this thread would have got at most one switch interval
    # (0.1 ms: a few thousand iterations) before the call returned.
    assert spins > 200_000, spins
