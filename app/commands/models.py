"""``strokelens models list | show V | promote V | rollback V``: the model registry.

Versions are made by ``strokelens finetune``; promoting one makes the workstation's Run AI (and
every command without ``--ensemble``) use it; rollback makes an earlier one active again. Both
are recorded in the registry's history (``core.registry``).
"""

from __future__ import annotations

import argparse
import json

HELP = "list, show, promote or roll back model versions (the registry 'finetune' fills)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "show", "promote", "rollback"])
    parser.add_argument("version", nargs="?", help="version name (demo, v0002, ...)")
    parser.add_argument("--registry", help="model registry folder (default: the user's)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _dsc(scores: dict[str, float], key: str = "ensemble") -> str:
    return f"{scores[key]:.3f}" if key in scores else "-"


def run(args: argparse.Namespace) -> int:
    from strokelens.core.registry import Registry, RegistryError

    registry = Registry(args.registry)
    if args.action == "list":
        if args.version is not None:
            raise RegistryError("'models list' takes no version")
        rows = registry.list()
        if args.json:
            print(json.dumps([_row(r) for r in rows], indent=2))
            return 0
        print(f"{'':2}{'version':9}{'parent':9}{'created':27}{'before':>8}{'after':>8}  cases")
        for r in rows:
            mark = "* " if r.active else "  "
            if r.record is None:
                print(f"{mark}{r.name:9}{'-':9}{'(bundled demo ensemble)':27}")
                continue
            rec = r.record
            print(
                f"{mark}{r.name:9}{rec.parent:9}{rec.created:27}{_dsc(rec.before):>8}"
                f"{_dsc(rec.after):>8}  {len(rec.train_cases)} trained, "
                f"{len(rec.heldout_cases)} held out"
            )
        for name in registry.staged():  # killed, cancelled or running: never active
            print(f"  {name:9}(unfinished: strokelens finetune --project P --resume {name})")
        return 0
    if args.version is None:
        raise RegistryError(
            f"'models {args.action}' needs a version (see 'strokelens models list')"
        )
    if args.action == "show":
        record = registry.record(args.version)
        info = {
            "version": args.version,
            "active": registry.active() == args.version,
            "manifest": str(registry.manifest_path(args.version)),
            "record": None if record is None else record.model_dump(mode="json"),
        }
        if args.version == registry.active():
            info["history"] = [h.model_dump() for h in registry.history()]
        print(json.dumps(info, indent=2))
        return 0
    change = registry.promote if args.action == "promote" else registry.rollback
    previous = change(args.version)
    print(f"active version: {args.version} (was {previous})")
    return 0


def _row(info) -> dict:
    return {
        "version": info.name,
        "active": info.active,
        "manifest": str(info.manifest),
        "parent": info.record.parent if info.record else None,
        "before": info.record.before if info.record else None,
        "after": info.record.after if info.record else None,
        "recommend": info.record.recommend if info.record else None,
    }
