"""Loading the model the ``inspectnn`` command names, for ``cli.py``.

A target is ``package.module:name`` or ``path/to/file.py:name`` (an ``nn.Module``
class, a model object, or a function returning a model, called with ``--arg``'s
keyword arguments), or a file saved with ``torch.save`` (``.pt``/``.pth``; a whole
pickled model only with ``--unsafe-pickle``). ``_importable`` puts the target's
folder and the working directory on ``sys.path`` as ``python`` does;
``_load_model`` imports or loads and builds the model. Anything that cannot be
imported, built or loaded becomes a ``UsageError`` (exit code 2) that says what
to pass instead; a ``.py`` file without ``:name`` gets the list of models it
defines (read with ``ast``, without running it).

Imports ``errors.py`` only (torch inside the functions that need it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import traceback
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inspectnn.errors import InspectnnError

__all__ = ["UsageError"]


class UsageError(InspectnnError):
    """The command line named something that cannot be inspected (exit code 2)."""


def _parse_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--arg takes KEY=VALUE, like --arg hidden=128 (got {pair!r})")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


@contextmanager
def _importable(target: str) -> Iterator[None]:
    """Put the target's folder and the working directory first on ``sys.path``, as
    ``python path/to/script.py`` and ``python -m`` do, for the duration of the run."""
    where = Path(target) if Path(target).is_file() else Path(target.rpartition(":")[0])
    folders = [where.resolve().parent] if where.is_file() else []
    folders.append(Path.cwd())
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)


def _raised_at(err: BaseException) -> str:
    """``"file.py, line 7: Type: message"``: where the user's code raised, and what."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith("<frozen") and f.filename != __file__]  # fmt: skip
    at = f"{frames[-1].filename}, line {frames[-1].lineno}: " if frames else ""
    return f"{at}{type(err).__name__}: {err}"


def _syntax(err: SyntaxError) -> str:
    """A syntax error as Python words it: file, line, the line itself and the message."""
    return "".join(traceback.format_exception_only(err)).rstrip()


def _import_failed(what: str, err: BaseException) -> UsageError:
    """The UsageError for a module that raised while being imported."""
    if isinstance(err, SyntaxError):
        return UsageError(f"cannot import {what}, it has a syntax error:\n{_syntax(err)}")
    if isinstance(err, ModuleNotFoundError) and err.name:
        return UsageError(
            f"importing {what} failed: it needs module {err.name!r}, which cannot be imported "
            f"({_raised_at(err)}). Install it, or run inspectnn from the folder that holds "
            "it, or add that folder to PYTHONPATH."
        )
    return UsageError(f"importing {what} failed at {_raised_at(err)}")


def _import_file(where: str) -> Any:
    """Run a Python file as a module of its own and return it."""
    path = Path(where)
    if not path.is_file():
        raise UsageError(f"no such file: {where}")
    module_name = f"_inspectnn_target_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UsageError(f"{where} is not a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise _import_failed(where, err) from None
    return module


def _import_module(where: str) -> Any:
    """Import ``package.module`` and return it."""
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        if err.name and (where + ".").startswith(err.name + "."):
            raise UsageError(
                f"cannot import {where}: no module named {err.name!r} in the working "
                "directory or on sys.path. Run inspectnn from the folder that holds it, add "
                "that folder to PYTHONPATH, or pass path/to/file.py:name."
            ) from None
        raise _import_failed(where, err) from None
    except Exception as err:
        raise _import_failed(where, err) from None


def _import_target(spec: str) -> Any:
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") and not name:
        raise _name_the_model(Path(where), where)
    if not where or not name:
        raise UsageError(
            f"cannot tell what {spec!r} names: pass package.module:name, "
            "path/to/file.py:name, or a saved .pt/.pth file"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(where)
    else:
        module = _import_module(where)
    if not hasattr(module, name):
        source = getattr(module, "__file__", None) or ""
        if source.endswith(".py"):
            classes, factories = _models_in(Path(source))
            if classes or factories:
                raise UsageError(f"{where} has no {name!r}; {_listing(where, classes, factories)}")
        public = sorted(n for n in vars(module) if not n.startswith("_"))[:20]
        raise UsageError(f"{where} has no {name!r}; it has: {', '.join(public)}")
    return getattr(module, name)


def _dotted(node: ast.expr) -> str:
    """``nn.Module`` for the expression ``nn.Module``; "" for anything not a dotted name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "nn.Module"
        return node.value if node.value.replace(".", "").isidentifier() else ""
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return node.id if isinstance(node, ast.Name) else ""


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Each name the file's imports bind, mapped to what it stands for (``nn``: ``torch.nn``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.partition(".")[0]  # `import torch.nn` binds `torch`
                out[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _is_module_class(dotted: str, aliases: dict[str, str], known: set[str]) -> bool:
    """Whether a dotted name in a file names an ``nn.Module`` class, as far as reading tells:
    classes of the file already found, names from modules already imported (torch), else a
    name ending in ``Module`` (``LightningModule``)."""
    from torch import nn

    if not dotted:
        return False
    if dotted in known:
        return True
    head, _, rest = dotted.partition(".")
    full = aliases.get(head, head) + (f".{rest}" if rest else "")
    root, *attrs = full.split(".")
    obj: Any = sys.modules.get(root)
    for attr in attrs:
        obj = getattr(obj, attr, None)
    if obj is not None:
        return isinstance(obj, type) and issubclass(obj, nn.Module)
    return full.endswith("Module")


def _models_in(path: Path) -> tuple[list[str], list[str]]:
    """The ``nn.Module`` classes and the factories defined at the top of a Python file.

    The file is read, not run: a factory is a public function annotated to return a
    module, or one that returns a module class called (``return nn.Sequential(...)``).

    Raises:
        UsageError: The file has a syntax error or cannot be read.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as err:
        raise UsageError(f"{path} has a syntax error:\n{_syntax(err)}") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    aliases = _aliases(tree)
    known: set[str] = set()
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    while True:  # a class may derive from a module class of the same file
        found = {
            c.name
            for c in classes
            if c.name not in known
            and any(_is_module_class(_dotted(b), aliases, known) for b in c.bases)
        }
        if not found:
            break
        known |= found
    factories = [
        fn.name
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef)
        and not fn.name.startswith("_")
        and _is_factory(fn, aliases, known)
    ]
    return [c.name for c in classes if c.name in known], factories


def _is_factory(fn: ast.FunctionDef, aliases: dict[str, str], known: set[str]) -> bool:
    """Annotated to return a module, or (no annotation) returns a module class called."""
    if fn.returns is not None:
        return _is_module_class(_dotted(fn.returns), aliases, known)
    return any(
        isinstance(r, ast.Return)
        and isinstance(r.value, ast.Call)
        and _is_module_class(_dotted(r.value.func), aliases, known)
        for r in ast.walk(fn)
    )


def _listing(written: str, classes: list[str], factories: list[str]) -> str:
    """``"its nn.Module classes: A, B; its model factories: f. Pass e.g. m.py:A"``."""
    groups = [f"its nn.Module classes: {_names(classes)}"] if classes else []
    groups += [f"its model factories: {_names(factories)}"] if factories else []
    return f"{'; '.join(groups)}. Pass e.g. {written}:{(classes or factories)[0]}"


def _names(names: list[str], most: int = 12) -> str:
    """``"A, B, C"``, the first ``most`` of them and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _name_the_model(path: Path, written: str) -> UsageError:
    """The UsageError for a Python file given without the model's name."""
    if not path.is_file():
        return UsageError(f"no such file: {written}")
    classes, factories = _models_in(path)
    if not classes and not factories:
        return UsageError(
            f"{written} is a Python file: name the model in it, as {written}:NAME (an "
            "nn.Module class, or a function returning a model). Reading it found no "
            "nn.Module class or factory."
        )
    return UsageError(f"{written} is a Python file: name the model in it; "
                      + _listing(written, classes, factories))  # fmt: skip


def _build(obj: Any, kwargs: dict[str, Any], spec: str) -> Any:
    from torch import nn

    if isinstance(obj, nn.Module):
        if kwargs:
            raise UsageError(f"{spec} is a model object already; --arg is for classes/factories")
        return obj
    if not callable(obj):
        raise UsageError(f"{spec} is a {type(obj).__name__}, not a model class or factory")
    try:
        model = obj(**kwargs)
    except Exception as err:
        if isinstance(err, TypeError) and len(traceback.extract_tb(err.__traceback__)) == 1:
            raise UsageError(  # the call itself was refused: its arguments are wrong
                f"calling {spec} failed: {err}. Pass its arguments with --arg key=value"
            ) from None
        raise UsageError(f"building the model with {spec} failed at {_raised_at(err)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
    return model


def _check_saved_file(path: Path) -> None:
    """Refuse a file that torch.load cannot read (not a zip or a pickle) or must not trace.

    Raises:
        UsageError: Says what the file is instead.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise UsageError(
                f"{path} is a TorchScript model: scripted code runs outside Python, where "
                "submodule calls cannot be seen, so it cannot be traced. Pass the eager "
                "model's class instead (path/to/file.py:ClassName)."
            )
        return
    with path.open("rb") as f:
        head = f.read(16)
    if head[:1] != b"\x80":  # every pickle torch.save writes starts with its PROTO opcode
        what = "it is empty" if not head else f"it starts with {head!r}"
        raise UsageError(
            f"{path} is not a PyTorch model file: it is neither a zip archive nor a pickle, "
            f"the formats torch.save writes ({what}). Pass a file saved with torch.save, or "
            "the model's class (path/to/file.py:ClassName)."
        )


def _unpickle_failed(path: Path, err: Exception) -> UsageError:
    """The UsageError for a whole pickled model whose code cannot be found."""
    if isinstance(err, ModuleNotFoundError) and err.name:
        return UsageError(
            f"{path} holds a pickled model whose code is in module {err.name!r}, which cannot "
            "be imported from the file's folder, the working directory or sys.path. Run "
            f"inspectnn from the folder that holds {err.name!r}, or add that folder to "
            "PYTHONPATH; or pass the model's class (path/to/file.py:ClassName)."
        )
    if isinstance(err, AttributeError) and "Can't get attribute" in str(err):
        return UsageError(
            f"{path} holds a pickled model whose class cannot be found ({err}): it was "
            "renamed or moved since the file was saved, or defined in the script that saved "
            "it. Pass the model's class instead (path/to/file.py:ClassName)."
        )
    return UsageError(f"cannot load {path}: {type(err).__name__}: {err}")


def _load_file(path: Path, unsafe: bool) -> Any:
    import pickle

    import torch
    from torch import nn

    _check_saved_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if not unsafe:
            raise UsageError(
                f"{path} holds a pickled object that weights_only loading refuses (likely a "
                "whole model saved with torch.save(model)). Loading it would run code from "
                "the file: if you trust it, pass --unsafe-pickle; better, pass the model's "
                "class (path/to/file.py:ClassName)."
            ) from None
        raise _unpickle_failed(path, err) from None
    except Exception as err:
        if unsafe:
            raise _unpickle_failed(path, err) from None
        raise UsageError(f"{path} is not a PyTorch model file: {err}") from None
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict):
        raise UsageError(
            f"{path} holds a state dict (parameter tensors only), which has no architecture "
            "to inspect. Pass the model's class instead, e.g. path/to/model.py:MyNet, and "
            "load the weights in its constructor if you need them."
        )
    raise UsageError(f"{path} holds a {type(obj).__name__}, not an nn.Module")


def _load_model(args: argparse.Namespace) -> Any:
    target = args.target
    kwargs = _parse_kwargs(args.arg)
    path = Path(target)
    if path.suffix == ".py":
        raise _name_the_model(path, target)
    if ":" not in target or (path.is_file() and path.suffix not in (".py",)):
        if not path.exists():
            raise UsageError(f"no such file: {target} (for a class, write file.py:ClassName)")
        if path.is_dir():
            raise UsageError(f"{target} is a folder: pass a saved model file or file.py:ClassName")
        return _load_file(path, args.unsafe_pickle)
    return _build(_import_target(target), kwargs, target)
