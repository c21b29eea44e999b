"""APK packaging for the Android demo app (android_demo/): Gradle or offline build, signing.

`package_apk` builds and signs the app; `android_build_capabilities` says which builds this
machine can do (used by `bluelm-edge doctor`); `stubs` checks the compile-only stubs against the
recorded upstream API list.
"""

from bluelm_edge.android.build import PackageResult, package_apk
from bluelm_edge.android.toolchain import AndroidBuildError, android_build_capabilities

__all__ = ["AndroidBuildError", "PackageResult", "android_build_capabilities", "package_apk"]
