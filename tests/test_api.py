"""The package-level API: every name in ``endoxai.__all__`` resolves to the object its module
defines, and ``import endoxai`` itself loads no torch (each entry point is imported on first
use)."""

import subprocess
import sys

import pytest

import endoxai


@pytest.mark.parametrize("name", [n for n in endoxai.__all__ if n != "__version__"])
def test_every_public_name_resolves_to_its_module_object(name):
    value = getattr(endoxai, name)
    module = endoxai._LAZY.get(name)
    if module is not None:
        assert value is getattr(sys.modules[module], name)
    assert name in dir(endoxai)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        endoxai.nope  # noqa: B018


def test_import_endoxai_loads_no_torch():
    code = "import sys, endoxai; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
