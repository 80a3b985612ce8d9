#!/bin/sh
# Compile the SDK and its test runner with Mono's mcs into OUT (default: ./build), then
# run the tests under mono; the exit code is the runner's. Extra arguments go to the
# runner (--unit: unit tests only). `make csharp` installs mcs and mono.
#   sh sdk/csharp/run_tests.sh [OUT] [--unit]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
[ $# -gt 0 ] && shift
mkdir -p "$out"
# -langversion:7.2 keeps to what the .csproj declares; warnings are errors.
mcs -target:library -langversion:7.2 -warnaserror+ -nowarn:1591 -r:System.Net.Http.dll \
    -doc:"$out/Sophonz.xml" -out:"$out/Sophonz.dll" "$here"/Sophonz/*.cs
mcs -target:exe -langversion:7.2 -warnaserror+ -r:System.Net.Http.dll -r:"$out/Sophonz.dll" \
    -out:"$out/SophonzTests.exe" "$here"/Sophonz.Tests/*.cs
cd "$out"
exec mono --debug SophonzTests.exe "$@"
