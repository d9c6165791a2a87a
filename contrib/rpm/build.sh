#!/usr/bin/env bash
# Builds the RPM from the same static binaries (contrib/static-bins.sh) and the same
# contrib/ files as the Debian package, with rpmbuild and contrib/rpm/lb-feedback.spec, for
# the host's target triple or the one in LB_FEEDBACK_TARGET (aarch64-unknown-linux-gnu
# makes the aarch64 package). Prints the path of the .rpm on stdout; progress goes to
# stderr. rpmbuild works in <target dir>/rpm/, and never in ~/rpmbuild.
#
# Usage: [LB_FEEDBACK_TARGET=TRIPLE] [LB_FEEDBACK_RPM_RELEASE=N] contrib/rpm/build.sh
#        (the release defaults to 1; contrib/rpm/ci.sh builds a 2 to test an upgrade)
#        (needs rpmbuild: Debian's package rpm)
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v rpmbuild >/dev/null || { echo "contrib/rpm/build.sh: needs rpmbuild (apt-get install rpm)" >&2; exit 1; }

bins=$(bash contrib/static-bins.sh ${LB_FEEDBACK_TARGET:+"$LB_FEEDBACK_TARGET"})
triple=$(basename "$(dirname "$bins")")
arch=${triple%%-*}
case $arch in
    x86_64 | aarch64) ;;
    *) echo "contrib/rpm/build.sh: no RPM architecture known for $triple" >&2; exit 1 ;;
esac
# The crate's version, from cargo itself (pkgid ends in "#lb-feedback@0.1.0").
version=$(cargo pkgid | sed 's/.*[@#]//')
release=${LB_FEEDBACK_RPM_RELEASE:-1}

top=${CARGO_TARGET_DIR:-$PWD/target}/rpm
rm -rf "$top/BUILDROOT" "$top/BUILD"
# --target sets the package's architecture only: nothing is compiled by rpmbuild.
rpmbuild -bb --quiet --target "$arch-linux" \
    --define "_topdir $top" \
    --define "lbf_version $version" \
    --define "lbf_src $PWD" \
    --define "lbf_bin $bins" \
    --define "lbf_release $release" \
    contrib/rpm/lb-feedback.spec >&2
rpm=$top/RPMS/$arch/lb-feedback-$version-$release.$arch.rpm
[ -f "$rpm" ] || { echo "contrib/rpm/build.sh: rpmbuild wrote no $rpm" >&2; exit 1; }
echo "$rpm"
