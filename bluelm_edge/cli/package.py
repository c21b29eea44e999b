"""`bluelm-edge package`: build and sign the Android demo APK (Gradle, or offline without an SDK)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console()

EXAMPLE = (
    "Build and sign the demo app.\n\n"
    "The flavour follows the bundle's backend (xnnpack, qnn, mediatek) and the ExecuTorch AAR is the "
    "version in android_demo/runtime.json; a bundle that needs a newer runtime is refused. With "
    "ANDROID_HOME set it runs Gradle (release, signed); otherwise it builds offline with Debian's tools: "
    "that APK installs and shows its UI but has no ExecuTorch native libraries, and one line says what "
    "the flavour still needs. The keystore password comes only from BLUELM_KEYSTORE_PASSWORD or a prompt.\n\n"
    "Example: bluelm-edge package ./bluelm-bundle --out app.apk --embed-bundle"
)


def package(
    bundle: Annotated[Path | None, typer.Argument(help="Bundle folder from `bluelm-edge export`.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="APK file to write.")] = Path("app.apk"),
    keystore: Annotated[Path | None, typer.Option(help="Release keystore (default: a generated debug key).")] = None,
    key_alias: Annotated[str | None, typer.Option(help="Key alias in --keystore.")] = None,
    embed_bundle: Annotated[bool, typer.Option(help="Put the bundle's files into the APK's assets.")] = False,
    executorch_aar: Annotated[Path | None, typer.Option(hidden=True, help="Not supported: the real AAR "
                                                        "needs the Gradle build.")] = None,
    offline: Annotated[bool, typer.Option(help="Build offline even when an Android SDK is set.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out even if it is not this app's APK.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    from bluelm_edge.android import package_apk

    if bundle is None and Path("bluelm-bundle").is_dir():
        bundle = Path("bluelm-bundle")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("packaging", total=None)
        result = package_apk(
            bundle, out, keystore=keystore, key_alias=key_alias, embed_bundle=embed_bundle,
            executorch_aar=executorch_aar, offline=True if offline else None,
            password_prompt=lambda: typer.prompt("Keystore password", hide_input=True),
            step=lambda s: progress.update(task, description=s), overwrite=overwrite,
        )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(f"[green]wrote[/green] {result.apk} ({result.build} build, {result.flavour} flavour, "
                  f"signed with {result.signer})")
    console.print(f"ExecuTorch runtime: {' + '.join(result.needs)} (android_demo/runtime.json pins "
                  f"executorch {result.executorch})")
    if result.embedded_files:
        console.print(f"embedded bundle: {len(result.embedded_files)} files in assets/bundle/")
    console.print(result.note, style="yellow" if result.build == "offline" else None)


def register(app: typer.Typer) -> None:
    app.command("package", help=EXAMPLE)(package)
