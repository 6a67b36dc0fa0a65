"""k-of-n debounce, hysteresis on recovery, STALE pass-through, reset on time jumps backwards."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fusion_monitor.health import DebounceConfig, Debouncer, Level

OK, W, E, S = Level.OK, Level.WARN, Level.ERROR, Level.STALE


CFG = DebounceConfig(window=5, raise_count=3, clear_count=4)


def run(levels, cfg=CFG):
    d = Debouncer(cfg)
    return [d.update(lv, i * 100) for i, lv in enumerate(levels)]


def test_single_glitches_never_raise():
    assert set(run([OK, E, OK, OK, W, OK, OK, E, OK, OK])) == {OK}


def test_raises_after_k_of_n():
    out = run([E, OK, E, OK, E])
    assert out == [OK, OK, OK, OK, E]


def test_warn_and_error_counted_separately():
    assert run([W, E, W])[-1] == W  # three bad, only one ERROR
    assert run([E, E, W, E])[-1] == E


def test_hysteresis_needs_consecutive_good_results():
    out = run([E, E, E] + [OK, OK, OK, E] + [OK] * 4)
    assert out[2] == E
    assert out[3:7] == [E, E, E, E]  # an interrupted recovery does not clear
    assert out[-1] == OK and out[-2] == E  # cleared after clear_count consecutive OK


def test_stale_passes_through_immediately_and_clears_window():
    out = run([E, E, S, E, OK])
    assert out[2] == S
    assert out[3:] == [OK, OK]  # the window was emptied


def test_time_jump_backwards_resets_instead_of_mixing_timelines():
    d = Debouncer(DebounceConfig(window=5, raise_count=3, clear_count=4))
    for t in (10, 20, 30):
        d.update(E, t)
    assert d.level == E
    assert d.update(OK, 5) == OK  # bag looped: start over
    assert d.resets == 1
    assert d.update(E, 6) == OK  # one bad sample in the new timeline is not enough


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([OK, W, E]), min_size=1, max_size=60), st.integers(1, 6), st.integers(1, 6))
def test_never_raises_without_k_bad_results_in_the_window(levels, k, c):
    cfg = DebounceConfig(window=6, raise_count=k, clear_count=c)
    d = Debouncer(cfg)
    hist = []
    prev = OK
    for i, lv in enumerate(levels):
        hist.append(lv)
        out = d.update(lv, i)
        if out > prev:  # a rise is always backed by k results at or above the new level
            assert sum(1 for h in hist[-6:] if h >= out) >= k
        prev = out
