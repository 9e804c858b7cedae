#!/usr/bin/env bash
# install-jaeger.sh installs the Jaeger all-in-one binary, pinned to
# JAEGER_VERSION, into <repo>/bin/jaeger when it is missing. The
# observability integration test (integration/observability_test.go) runs
# it as a real trace viewer.
#
# Jaeger is built from the Go module proxy in a scratch module under a
# temporary directory, so the repository's go.mod never gains Jaeger's
# dependencies. The build takes about nine minutes on two cores from a cold
# module cache; `make tools` runs it in parallel with the promtool install.
#
# Usage: scripts/install-jaeger.sh [--force]
set -euo pipefail

JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${repo}/bin"
target="${bin}/jaeger"

if [[ "${1:-}" != "--force" && -x "${target}" ]]; then
	echo "install-jaeger: ${target} already present"
	exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT
mkdir -p "${bin}"

cd "${scratch}"
# GOFLAGS from the caller (e.g. -mod=vendor) must not leak into the scratch module.
export GOFLAGS=
go mod init x >/dev/null 2>&1
go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@${JAEGER_VERSION}"
GOBIN="${bin}" go install github.com/jaegertracing/jaeger/cmd/jaeger
echo "install-jaeger: installed ${target} (${JAEGER_VERSION})"
