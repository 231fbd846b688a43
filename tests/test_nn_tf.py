"""calib.nn.tf: the quiet, lazy TensorFlow import (and its background start)."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("TF_")}, **env})


def test_import_in_background_leaves_the_thread_counts_to_set():
    """The background import runs no op: the thread counts set afterwards by ``tensorflow(before_first_op)``
    still take, the main thread goes on meanwhile, and nothing reaches stderr."""
    code = (
        "import sys, threading\n"
        "from calib.nn.tf import import_in_background, tensorflow\n"
        "t = import_in_background()\n"
        "assert isinstance(t, threading.Thread)\n"
        "print('main thread went on', t.is_alive() or 'tensorflow' in sys.modules)\n"
        "def one(tf):\n"
        "    tf.config.threading.set_intra_op_parallelism_threads(1)\n"
        "    tf.config.threading.set_inter_op_parallelism_threads(1)\n"
        "tf = tensorflow(before_first_op=one)\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())\n"
        "print(import_in_background())\n"
    )
    res = _run(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == ["main thread went on True", "1 1", "None"]
    assert res.stderr == ""


def test_import_in_background_declines_where_tensorflow_would_talk():
    """With TensorFlow's C++ log level below 2 the import would write to the process's stderr
    (which the background thread must not redirect): it does not start."""
    res = _run("from calib.nn.tf import import_in_background; import sys; "
               "print(import_in_background(), 'tensorflow' in sys.modules)", TF_CPP_MIN_LOG_LEVEL="0")
    assert res.returncode == 0 and res.stdout.split() == ["None", "False"]
    res = _run("from calib.nn.tf import import_in_background; print(import_in_background())",
               TF_CPP_MIN_LOG_LEVEL="x")
    assert res.stdout.split() == ["None"]


def test_flat_caller_gives_the_concrete_functions_outputs():
    import numpy as np

    from calib.nn.tf import flat_caller, tensorflow

    tf = tensorflow()
    v = tf.Variable(np.arange(3, dtype=np.float32))

    def f(a):
        v.assign_add(a)
        return tf.reduce_sum(v * a), v * 2.0

    concrete = tf.function(f, autograph=False).get_concrete_function(tf.TensorSpec([3], tf.float32))
    fast = flat_caller(concrete)
    a = tf.constant([1.0, -2.0, 0.5])
    s1, w1 = concrete(a)
    s2, w2 = fast(a)  # the same function: the variable moved once more
    assert float(s2) == float(tf.reduce_sum((v.numpy()) * a))
    np.testing.assert_array_equal(w2.numpy(), 2.0 * v.numpy())
    assert float(s1) != float(s2) and v.numpy().tolist() == [2.0, -3.0, 3.0]
    # without the private entry point it is the concrete function itself
    assert flat_caller(object) is object


def test_without_optional_imports_blocks_only_the_calling_thread():
    """The lean import's blocker: ``import`` of a blocked package fails in the calling thread
    only, while the block lasts; other threads import it meanwhile, and it imports afterwards."""
    code = (
        "import sys, threading\n"
        "from calib.nn.tf import without_optional_imports\n"
        "got = {}\n"
        "def other():\n"
        "    import csv\n"
        "    got['other'] = 'csv' in sys.modules\n"
        "sys.modules.pop('csv', None)\n"
        "with without_optional_imports(('csv', 'wave')):\n"
        "    try:\n"
        "        import wave\n"
        "        got['here'] = 'imported'\n"
        "    except ImportError as exc:\n"
        "        got['here'] = type(exc).__name__\n"
        "    t = threading.Thread(target=other); t.start(); t.join()\n"
        "import wave\n"
        "print(got['here'], got['other'], wave.__name__)\n"
    )
    res = _run(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ModuleNotFoundError", "True", "wave"]


def test_a_lean_import_leaves_keras_working_and_the_packages_importable():
    """A sweep worker imports TensorFlow lean (without Keras's scikit-learn, pandas and matplotlib
    helpers: seconds on 2 cores); the network still builds and predicts, and the packages still
    import afterwards (the physics fits use scikit-learn)."""
    code = (
        "import sys\n"
        "from calib.nn.tf import tensorflow, keras\n"
        "tf = tensorflow(lean=True)\n"
        "print(sorted(m for m in ('sklearn', 'pandas', 'matplotlib') if m in sys.modules))\n"
        "import numpy as np\n"
        "k = keras()\n"
        "m = k.Sequential([k.Input((2,)), k.layers.Dense(3, activation='tanh'), k.layers.Dense(1)])\n"
        "print(m.predict(np.ones((4, 2), dtype=np.float32), verbose=0).shape)\n"
        "import sklearn.linear_model, pandas\n"
        "print(pandas.DataFrame({'a': [1]}).shape)\n"
    )
    res = _run(code, TF_CPP_MIN_LOG_LEVEL="2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == ["[]", "(4, 1)", "(1, 1)"]
