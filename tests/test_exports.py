"""wslab/__init__.py re-exports what the notebooks need, and each public module declares __all__."""

import importlib
import pkgutil

import wslab


def test_every_public_module_declares_all_and_its_names_exist() -> None:
    for info in pkgutil.walk_packages(wslab.__path__, "wslab."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):  # __main__ would run the command
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), f"{info.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.__all__ names {name}, which it does not define"


def test_the_package_exports_exactly_its_all() -> None:
    public = {name for name in dir(wslab) if not name.startswith("_")}
    modules = {info.name for info in pkgutil.iter_modules(wslab.__path__)}
    assert public - modules - {"annotations"} == set(wslab.__all__)


def test_the_package_reexports_the_modules_public_names_a_notebook_uses() -> None:
    from wslab.lab import client, exceptions, server

    for module in (client, exceptions, server):
        assert set(module.__all__) <= set(wslab.__all__), module.__name__
