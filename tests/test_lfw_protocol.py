"""LFW View 2: the real pairs.txt parses; the k-fold loop every protocol runs equals a plain re-computation."""

import numpy as np
import pytest
from helpers import compose_config
from sklearn.metrics import roc_curve
from sklearn.svm import SVC

from facetrain.errors import FacetrainError
from facetrain.eval import best_threshold, evaluate_lfw, held_out_scores, kfold_accuracy, parse_lfw_pairs


def test_real_pairs_file(protocols):
    pairs = parse_lfw_pairs(protocols / "lfw" / "pairs.txt")
    assert len(pairs) == 6000 and pairs.folds == 10 and pairs.per_fold == 300
    for f in range(10):
        in_fold = pairs.same[pairs.fold == f]
        assert len(in_fold) == 600 and in_fold[:300].all() and not in_fold[300:].any()
    assert pairs.left[0] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs.right[0] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    assert len(pairs.images) == 7701  # distinct images, as tests/fixtures/protocols/README.md states


def _write(tmp_path, text):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, where", [
    ("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\nC\t1\n", ":5:"),        # mismatched line with 2 fields
    ("1\t1\nA\t1\tB\t2\nA\t1\t2\n", ":2:"),                       # a mismatched line where a matched one belongs
    ("1\t1\nA\tx\t2\nA\t1\tB\t1\n", ":2:"),                       # not a number
    ("1\t2\nA\t1\t2\nA\t1\tB\t1\n", "promises"),                  # too few lines
    ("ten\t300\n", ":1:"),                                         # bad header
])
def test_malformed_pairs_name_file_and_line(tmp_path, text, where):
    with pytest.raises(FacetrainError, match=where):
        parse_lfw_pairs(_write(tmp_path, text))


def test_a_missing_evaluation_folder_is_named_rather_than_its_pairs_file(tmp_path):
    cfg = compose_config("eval", ["protocol=lfw", f"data.root={tmp_path / 'nope'}", f"run_dir={tmp_path / 'out'}"])
    with pytest.raises(FacetrainError, match=f"data.root={tmp_path / 'nope'} is not a folder; point it at the LFW"):
        evaluate_lfw(cfg)


def test_crlf_and_trailing_blank_lines(tmp_path):
    pairs = parse_lfw_pairs(_write(tmp_path, "1\t1\r\nA\t1\t2\r\nA\t1\tB\t3\r\n\r\n"))
    assert pairs.right == ["A/A_0002.jpg", "B/B_0003.jpg"] and list(pairs.same) == [True, False]


def _naive_kfold(scores, same, fold):
    """Straightforward: try every midpoint threshold in a Python loop, keep the first best."""
    accs = []
    for f in range(fold.max() + 1):
        tr_s, tr_y = scores[fold != f], same[fold != f]
        uniq = sorted(set(tr_s.tolist()))
        cands = [uniq[0] - 1e-6] + [(a + b) / 2 for a, b in zip(uniq, uniq[1:], strict=False)] + [uniq[-1] + 1e-6]
        best, best_acc = None, -1.0
        for t in cands:
            acc = np.mean((tr_s > t) == tr_y)
            if acc > best_acc:
                best, best_acc = t, acc
        accs.append(np.mean((scores[fold == f] > best) == same[fold == f]))
    return np.array(accs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_equals_naive_recomputation(seed):
    rng = np.random.default_rng(seed)
    fold = np.repeat(np.arange(10), 60)
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    scores = np.round(rng.normal(same * 0.8, 0.5), 2)  # rounding makes ties, the tricky case
    result = kfold_accuracy(scores, same, fold)
    np.testing.assert_allclose(result.accuracies, _naive_kfold(scores, same, fold))
    assert result.std == pytest.approx(np.std(result.accuracies))


def test_best_training_accuracy_matches_sklearn_roc():
    rng = np.random.default_rng(5)
    same = rng.random(500) < 0.5
    scores = rng.normal(same * 1.0, 1.0)
    _, acc = best_threshold(scores, same)
    fpr, tpr, _ = roc_curve(same, scores, drop_intermediate=False)
    p, n = same.sum(), (~same).sum()
    assert acc == pytest.approx(np.max((tpr * p + (1 - fpr) * n) / len(same)))


def test_separable_and_random_scores():
    fold = np.repeat(np.arange(10), 100)
    same = np.tile(np.r_[np.ones(50, bool), np.zeros(50, bool)], 10)
    assert kfold_accuracy(same * 1.0 + 0.01 * np.arange(1000) / 1000, same, fold).mean == 1.0
    rng = np.random.default_rng(0)
    chance = kfold_accuracy(rng.random(1000), rng.permutation(same), fold).mean
    assert 0.4 < chance < 0.6


def _ties(seed, folds=10, per_fold=60):
    """Scores rounded to 2 decimals (ties, the tricky case), balanced labels, equal folds."""
    rng = np.random.default_rng(seed)
    fold = np.repeat(np.arange(folds), per_fold)
    same = np.tile(np.r_[np.ones(per_fold // 2, bool), np.zeros(per_fold // 2, bool)], folds)
    return np.round(rng.normal(same * 0.8, 0.5, size=(folds, len(same))), 2), same, fold


@pytest.mark.parametrize("seed", [0, 1])
def test_kfold_per_fold_rows_use_row_k_for_fold_k(seed):
    """[folds, P] scores (per-fold PCA, per-split centring): fold k's threshold and test both read row k."""
    rows, same, fold = _ties(seed)
    result = kfold_accuracy(rows, same, fold)
    expected = [_naive_kfold(rows[k], same, fold)[k] for k in range(10)]
    np.testing.assert_allclose(result.accuracies, expected)
    for k in range(10):
        thr, _ = best_threshold(rows[k][fold != k], same[fold != k])
        assert result.thresholds[k] == thr
        np.testing.assert_array_equal(result.correct[fold == k], (rows[k][fold == k] > thr) == same[fold == k])


def test_kfold_one_row_is_shared_by_every_fold():
    rows, same, fold = _ties(2)
    one = kfold_accuracy(rows[0], same, fold)
    for shared in (rows[:1], np.tile(rows[0], (10, 1))):
        again = kfold_accuracy(shared, same, fold)
        np.testing.assert_array_equal(again.accuracies, one.accuracies)
        np.testing.assert_array_equal(again.thresholds, one.thresholds)
        np.testing.assert_array_equal(again.correct, one.correct)
    per_fold = [one.correct[fold == k].mean() for k in range(10)]
    np.testing.assert_array_equal(one.accuracies, per_fold)  # correctness and accuracies agree


def test_kfold_svm_equals_a_linear_svm_per_fold():
    rows, same, fold = _ties(3, folds=4, per_fold=30)
    result = kfold_accuracy(rows, same, fold, classifier="svm")
    for k in range(4):
        test = fold == k
        svm = SVC(kernel="linear", C=1.0).fit(rows[k][~test, None], same[~test])
        np.testing.assert_array_equal(result.correct[test], svm.predict(rows[k][test, None]) == same[test])
    assert np.isnan(result.thresholds).all()
    with pytest.raises(FacetrainError, match="classifier='knn' is not one of threshold, svm"):
        kfold_accuracy(rows, same, fold, classifier="knn")


def test_held_out_scores_pick_each_pairs_own_fold_row():
    rows, _, fold = _ties(4, folds=3, per_fold=4)
    np.testing.assert_array_equal(held_out_scores(rows, fold), [rows[f, i] for i, f in enumerate(fold)])
    np.testing.assert_array_equal(held_out_scores(rows[0], fold), rows[0])
