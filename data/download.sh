#!/usr/bin/env bash
# Download the public English-Japanese corpora that nmt's configs name, build them where the
# upstream files need mechanical processing (data/build_<name>.py), and check every final file
# against data/checksums.sha256: a corpus is only put in place if it is byte-identical to the
# copy the project was measured on. See data/README.md.
#
#   bash data/download.sh <name>...      one or more corpora (see `list`)
#   bash data/download.sh all            every corpus below (not kftt)
#   bash data/download.sh kftt           the official KFTT 1.0 release (a different split!)
#   bash data/download.sh verify [DIR]   check what is present under DIR (default: the root)
#   bash data/download.sh list           the corpora, their sources and licenses
#
# Files go to $NMT_DATA_ROOT/<name>/ if NMT_DATA_ROOT is set, else to data/corpora/<name>/.
# Downloads are staged in a temporary folder ($NMT_DATA_WORK if set, else one under $TMPDIR or
# /tmp), removed once verified; the root folder is only created when a verified file goes in.
# Re-running is cheap: a corpus whose files all match their checksums is skipped without any
# network access. Needs bash, curl or wget, sha256sum or shasum, and python3 (>= 3.10) for the
# corpora that are built.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUMS="$HERE/checksums.sha256"
ROOT="${NMT_DATA_ROOT:-$HERE/corpora}"
PYTHON="${PYTHON:-python3}"
PROG="download.sh"

CORPORA="small_parallel_enja kyoto_wiki wmt21_newstest_enja wmt23_generaltest_enja
wmt24_generaltest_enja ntrex128_enja bsd_enja coursera_enja tatoeba_manythings_enja
tatoeba_enja_split small_parallel_enja_raw"

# Pinned upstream commits: the ones the copies in shared/data were taken from (see each
# corpus' README there). Raw files at a commit never change, so their checksums hold.
# small_parallel_enja's README names no commit: bc6f160 is the commit that added its data files
# (dev/test and the train.*.00N parts, which we concatenate), unchanged in later commits.
SMALL_PARALLEL_COMMIT=bc6f160498e5f97a286ff679173e7f6ba9321d9f  # odashi/small_parallel_enja
KYOTO_COMMIT=e5fcb65f2101efa7ab05ade551d97f6c5af6db7b           # venali/BilingualCorpus
WMT21_COMMIT=f41750dadbf2ba6ab01ca5380347d253298a3427           # wmt-conference/wmt21-news-systems
WMT23_COMMIT=99b5b9de2a535c2c5542fd4ec404682903299894           # wmt-conference/wmt23-news-systems
WMT24_COMMIT=bfa937ee53586aa173d68657b89b8642693f7b66           # wmt-conference/wmt24-news-systems
NTREX_COMMIT=8561f6a622db9edad1217683e5c83daefd8bb2bf           # MicrosoftTranslator/NTREX
BSD_COMMIT=050fd4241da458377c1ce26b2c31b0af0a20e444             # tsuruoka-lab/BSD
COURSERA_COMMIT=8217d39fad27aece860c1741910af27c34337c8a        # shyyhs/CourseraParallelCorpusMining
TATOEBA_COMMIT=70f3542faea9753b125dd3974f2a49d2085b90a4         # futurebridge/ZukaiML (jpn.txt, 2019)

RAW=https://raw.githubusercontent.com

# The Kyoto XML release: the GitHub mirror at the pinned commit, else NICT's own tarball.
# Neither archive has a checksum we could record (GitHub archives are generated on demand and
# are not guaranteed byte-stable; NICT's could not be fetched when this was written), so the
# files built from it are verified instead. KYOTO_SOURCE=/path (a tarball or an unpacked
# wiki_corpus_2.01 folder) uses a local copy and skips the download.
KYOTO_URLS="https://github.com/venali/BilingualCorpus/archive/$KYOTO_COMMIT.tar.gz
https://alaginrc.nict.go.jp/WikiCorpus/src/wiki_corpus_2.01.tar.gz"

# KFTT 1.0. No SHA-256 is published; this SHA-1 of the tarball is the one checked by
# daac-tools/vibrato (scripts/prepare_ipadic-mecab-2_7_0.sh). The extracted data/orig files are
# also checked against KFTT's published sizes. Set KFTT_SHA1= (empty) to skip the SHA-1 check.
KFTT_URL=http://www.phontron.com/kftt/download/kftt-data-1.0.tar.gz
KFTT_SHA1="${KFTT_SHA1-0e1f5a9dc993b7d74ca6a0521232d17ce94c8cb4}"

# ----------------------------------------------------------------------------- helpers

die() { echo "$PROG: error: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }
say() { echo "[$CURRENT] $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
CURRENT=download
WORK=""
OWN_WORK=0

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

is_corpus() {
    local c
    for c in $CORPORA; do [ "$c" = "$1" ] && return 0; done
    return 1
}

sha256_of() {
    if have sha256sum; then sha256sum "$1" | cut -d' ' -f1
    elif have shasum; then shasum -a 256 "$1" | cut -d' ' -f1
    else "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

sha1_of() {
    if have sha1sum; then sha1sum "$1" | cut -d' ' -f1
    elif have shasum; then shasum -a 1 "$1" | cut -d' ' -f1
    else "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha1(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

# expected SHA-256 of a path relative to the root ("kyoto_wiki/train.en")
expected_sha() {
    awk -v rel="$1" '$2 == rel { print $1; found = 1; exit } END { exit !found }' "$SUMS" \
        || die "no checksum for $1 in $SUMS"
}

# the files of a corpus, as paths relative to the root
files_of() { awk -v pre="$1/" 'index($2, pre) == 1 { print $2 }' "$SUMS"; }

# 0: present and matching; 1: present, wrong checksum; 2: missing
check_file() {
    local dir=$1 rel=$2
    [ -f "$dir/$rel" ] || return 2
    [ "$(sha256_of "$dir/$rel")" = "$(expected_sha "$rel")" ] || return 1
}

corpus_ok() {
    local rel
    for rel in $(files_of "$1"); do check_file "$ROOT" "$rel" || return 1; done
}

need_python() {
    have "$PYTHON" || die "$1 is built by a Python script: install python3 (>= 3.10) or set PYTHON=/path/to/python3"
}

# download URL DEST: fetch to DEST.part, then rename. Returns 1 (with a message) on failure.
download() {
    local url=$1 dest=$2
    mkdir -p "$(dirname "$dest")"
    rm -f "$dest.part"
    say "downloading $url"
    if have curl; then
        if ! curl -fL --retry 3 --retry-delay 3 --connect-timeout 30 --progress-bar \
                -o "$dest.part" "$url"; then
            rm -f "$dest.part"; echo "$PROG: download failed: $url" >&2; return 1
        fi
    elif have wget; then
        if ! wget --tries=3 --timeout=60 -O "$dest.part" "$url"; then
            rm -f "$dest.part"; echo "$PROG: download failed: $url" >&2; return 1
        fi
    else
        die "neither curl nor wget is installed"
    fi
    mv "$dest.part" "$dest" || return 1
}

# install_verified FILE REL: move FILE to <root>/REL if its SHA-256 is the expected one.
install_verified() {
    local file=$1 rel=$2 got want
    got=$(sha256_of "$file")
    want=$(expected_sha "$rel")
    if [ "$got" != "$want" ]; then
        echo "$PROG: checksum mismatch for $rel" >&2
        echo "    expected $want" >&2
        echo "    got      $got  ($file, kept for inspection)" >&2
        return 1
    fi
    mkdir -p "$ROOT/$(dirname "$rel")" && mv -f "$file" "$ROOT/$rel" || return 1
    say "OK  $rel"
}

# install_built OUTDIR NAME: verify every expected file of NAME in OUTDIR, then move them all.
install_built() {
    local out=$1 name=$2 rel bad=0
    for rel in $(files_of "$name"); do
        if [ ! -f "$out/${rel#*/}" ]; then
            echo "$PROG: the build did not write ${rel#*/}" >&2; bad=1
        elif [ "$(sha256_of "$out/${rel#*/}")" != "$(expected_sha "$rel")" ]; then
            echo "$PROG: checksum mismatch for $rel (built file kept in $out)" >&2; bad=1
        fi
    done
    [ "$bad" = 0 ] || die "$name: the built files differ from the ones nmt was measured on; nothing was installed"
    for rel in $(files_of "$name"); do install_verified "$out/${rel#*/}" "$rel"; done
}

# fetch_final URL REL: a file used exactly as published: download it straight into place.
fetch_final() {
    local url=$1 rel=$2 work="$WORK/${2%%/*}"
    if check_file "$ROOT" "$rel"; then say "ok  $rel (already verified)"; return 0; fi
    download "$url" "$work/${rel#*/}" || die "could not download $url"
    install_verified "$work/${rel#*/}" "$rel" || die "$url is not the file nmt was measured on"
}

finish() {  # finish NAME: report, drop the staging folder
    rm -rf "${WORK:?}/$1"
    say "done: $ROOT/$1"
}

# The staging folder: $NMT_DATA_WORK (kept), else a temporary one, removed on success and kept
# (with a message) after a failure.
setup_work() {
    if [ -n "${NMT_DATA_WORK:-}" ]; then
        WORK=$NMT_DATA_WORK; OWN_WORK=0
        mkdir -p "$WORK" || die "cannot create NMT_DATA_WORK=$WORK"
    else
        WORK=$(mktemp -d "${TMPDIR:-/tmp}/nmt-data.XXXXXX") || die "cannot create a temporary folder"
        OWN_WORK=1
    fi
    trap cleanup_work EXIT
}

cleanup_work() {
    local rc=$?
    if [ "$OWN_WORK" = 1 ]; then
        if [ "$rc" = 0 ] || [ -z "$(find "$WORK" -type f 2>/dev/null | head -n 1)" ]; then rm -rf "$WORK"
        else echo "$PROG: partial downloads kept in $WORK (delete it when done)" >&2
        fi
    fi
    return "$rc"
}

skip_if_ok() {
    if corpus_ok "$1"; then say "already present and verified in $ROOT/$1"; return 0; fi
    return 1
}

# ----------------------------------------------------------------------------- corpora

get_small_parallel_enja() {
    local name=small_parallel_enja work l i rel
    local base="$RAW/odashi/small_parallel_enja/$SMALL_PARALLEL_COMMIT"
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    for rel in dev.en dev.ja test.en test.ja; do fetch_final "$base/$rel" "$name/$rel"; done
    # train.{en,ja} are the concatenation of the five published parts train.{en,ja}.00[0-4]
    for l in en ja; do
        if check_file "$ROOT" "$name/train.$l"; then say "ok  $name/train.$l (already verified)"; continue; fi
        for i in 000 001 002 003 004; do
            download "$base/train.$l.$i" "$work/parts/train.$l.$i" || die "could not download train.$l.$i"
        done
        cat "$work"/parts/train."$l".00[0-4] > "$work/train.$l"
        install_verified "$work/train.$l" "$name/train.$l" || die "$name/train.$l does not verify"
    done
    finish "$name"
}

get_kyoto_wiki() {
    local name=kyoto_wiki work src url
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    need_python "$name"
    if [ -n "${KYOTO_SOURCE:-}" ]; then
        src=$KYOTO_SOURCE
        [ -e "$src" ] || die "KYOTO_SOURCE=$src does not exist"
        say "using the local release $src"
    else
        src=""
        for url in $KYOTO_URLS; do
            # a complete earlier download in $NMT_DATA_WORK (never a .part) is reused
            if [ -s "$work/$(basename "$url")" ] || download "$url" "$work/$(basename "$url")"; then
                src="$work/$(basename "$url")"; break
            fi
            warn "could not get the Kyoto XML release from $url"
        done
        [ -n "$src" ] || die "could not download the Kyoto XML release; get wiki_corpus_2.01 from https://alaginrc.nict.go.jp/WikiCorpus/ and rerun with KYOTO_SOURCE=/path/to/it"
    fi
    say "extracting pairs and splitting by article (a few minutes)"
    rm -rf "$work/out"
    "$PYTHON" "$HERE/build_kyoto_wiki.py" "$src" "$work/out" || die "build_kyoto_wiki.py failed"
    install_built "$work/out" "$name"
    finish "$name"
    say "note: this is our own article-level split, not the official KFTT split (see data/README.md)"
}

get_wmt21_newstest_enja() {
    local name=wmt21_newstest_enja work
    local base="$RAW/wmt-conference/wmt21-news-systems/$WMT21_COMMIT"
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    fetch_final "$base/txt/sources/newstest2021.en-ja.src.en" "$name/test.en"
    fetch_final "$base/txt/references/newstest2021.en-ja.ref.A.ja" "$name/test.ja"
    if ! check_file "$ROOT" "$name/test.docids"; then
        need_python "$name"
        download "$base/xml/newstest2021.en-ja.all.xml" "$work/newstest2021.en-ja.all.xml" \
            || die "could not download the WMT21 en-ja XML"
        "$PYTHON" "$HERE/build_wmt21_newstest_enja.py" "$work/newstest2021.en-ja.all.xml" \
            "$ROOT/$name/test.en" "$work/out/test.docids" || die "build_wmt21_newstest_enja.py failed"
        install_verified "$work/out/test.docids" "$name/test.docids" || die "$name/test.docids does not verify"
    fi
    finish "$name"
}

get_wmt23_generaltest_enja() {
    local name=wmt23_generaltest_enja
    local base="$RAW/wmt-conference/wmt23-news-systems/$WMT23_COMMIT"
    skip_if_ok "$name" && return 0
    fetch_final "$base/txt/sources/generaltest2023.en-ja.src.en" "$name/test.en"
    fetch_final "$base/txt/references/generaltest2023.en-ja.ref.refA.ja" "$name/test.ja"
    finish "$name"
}

get_wmt24_generaltest_enja() {
    local name=wmt24_generaltest_enja work
    local base="$RAW/wmt-conference/wmt24-news-systems/$WMT24_COMMIT"
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    need_python "$name"
    download "$base/txt/sources/en-ja.txt" "$work/en-ja.txt" || die "could not download the WMT24 source"
    download "$base/txt/references/en-ja.refA.txt" "$work/en-ja.refA.txt" || die "could not download the WMT24 reference"
    download "$base/txt/documents/en-ja.docs" "$work/en-ja.docs" || die "could not download the WMT24 document ids"
    rm -rf "$work/out"
    "$PYTHON" "$HERE/build_wmt24_generaltest_enja.py" "$work/en-ja.txt" "$work/en-ja.refA.txt" \
        "$work/en-ja.docs" "$work/out" || die "build_wmt24_generaltest_enja.py failed"
    install_built "$work/out" "$name"
    finish "$name"
}

get_ntrex128_enja() {
    local name=ntrex128_enja work
    local base="$RAW/MicrosoftTranslator/NTREX/$NTREX_COMMIT"
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    need_python "$name"
    download "$base/NTREX-128/newstest2019-src.eng.txt" "$work/newstest2019-src.eng.txt" || die "could not download the NTREX source"
    download "$base/NTREX-128/newstest2019-ref.jpn.txt" "$work/newstest2019-ref.jpn.txt" || die "could not download the NTREX reference"
    download "$base/DOCUMENT_IDS.tsv" "$work/DOCUMENT_IDS.tsv" || die "could not download the NTREX document ids"
    rm -rf "$work/out"
    "$PYTHON" "$HERE/build_ntrex128_enja.py" "$work/newstest2019-src.eng.txt" \
        "$work/newstest2019-ref.jpn.txt" "$work/DOCUMENT_IDS.tsv" "$work/out" \
        || die "build_ntrex128_enja.py failed"
    install_built "$work/out" "$name"
    finish "$name"
}

get_bsd_enja() {
    local name=bsd_enja work
    local base="$RAW/tsuruoka-lab/BSD/$BSD_COMMIT"
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    need_python "$name"
    download "$base/dev.json" "$work/dev.json" || die "could not download BSD dev.json"
    download "$base/test.json" "$work/test.json" || die "could not download BSD test.json"
    rm -rf "$work/out"
    "$PYTHON" "$HERE/build_bsd_enja.py" "$work/dev.json" "$work/test.json" "$work/out" \
        || die "build_bsd_enja.py failed"
    install_built "$work/out" "$name"
    finish "$name"
    say "note: BSD is CC BY-NC-SA 4.0 (non-commercial use only)"
}

get_tatoeba_manythings_enja() {
    local name=tatoeba_manythings_enja work
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    need_python "$name"
    download "$RAW/futurebridge/ZukaiML/$TATOEBA_COMMIT/jpn.txt" "$work/jpn.txt" || die "could not download jpn.txt"
    rm -rf "$work/out"
    "$PYTHON" "$HERE/build_tatoeba_manythings_enja.py" "$work/jpn.txt" "$work/out" || die "build_tatoeba_manythings_enja.py failed"
    install_built "$work/out" "$name"
    finish "$name"
    say "note: training data only (it overlaps small_parallel_enja); tatoeba_enja_split has dev/test"
}

# locate NAME: the root folder that holds a verified copy of corpus NAME: the root, else
# ../shared/data beside the repository (the development machines' copies), else one downloaded
# into the root now. Derived corpora are built from what it finds.
locate() {
    local name=$1 dir
    for dir in "$ROOT" "$HERE/../../shared/data"; do
        if [ -d "$dir/$name" ] && ROOT="$dir" corpus_ok "$name"; then echo "$dir"; return 0; fi
    done
    (NMT_DATA_ROOT="$ROOT" bash "$HERE/download.sh" "$name" >&2) || return 1
    echo "$ROOT"
}

# not_found NAME: what locate tried, and what the user can do instead
not_found() {
    echo "no verified copy in $ROOT or $(cd "$HERE/.." && pwd)/../shared/data, and it could not be downloaded;" \
        "set NMT_DATA_ROOT to a folder that holds $1/ (or run where the network reaches its source)"
}

# build_derived NAME SCRIPT: NAME built by data/SCRIPT from tatoeba_manythings_enja and
# small_parallel_enja (wherever verified copies are), then verified like any download.
build_derived() {
    local name=$1 script=$2 work tat spe
    work="$WORK/$name"
    skip_if_ok "$name" && return 0
    need_python "$name"
    tat=$(locate tatoeba_manythings_enja) || die "$name needs tatoeba_manythings_enja: $(not_found tatoeba_manythings_enja)"
    spe=$(locate small_parallel_enja) || die "$name needs small_parallel_enja: $(not_found small_parallel_enja)"
    rm -rf "$work/out"
    "$PYTHON" "$HERE/$script" --tatoeba "$tat/tatoeba_manythings_enja" \
        --small-parallel "$spe/small_parallel_enja" "$work/out" || die "$script failed"
    install_built "$work/out" "$name"
    finish "$name"
}

get_tatoeba_enja_split() { build_derived tatoeba_enja_split build_tatoeba_enja_split.py; }

# needs sacremoses: run it with nmt's Python (PYTHON=.venv/bin/python, or from the recipes)
get_small_parallel_enja_raw() { build_derived small_parallel_enja_raw build_small_parallel_enja_raw.py; }

get_coursera_enja() {
    local name=coursera_enja split l
    local base="$RAW/shyyhs/CourseraParallelCorpusMining/$COURSERA_COMMIT/data/Coursera_En-Ja"
    skip_if_ok "$name" && return 0
    for split in dev test; do
        for l in en ja; do fetch_final "$base/$split.$l.txt" "$name/$split.$l"; done
    done
    finish "$name"
    say "note: lecture subtitles under third-party copyright: use for evaluation only"
}

get_kftt() {
    local dest="$ROOT/kftt" tarball got split l n want
    tarball="$ROOT/kftt/kftt-data-1.0.tar.gz"
    say "NOTE: KFTT's official split (train 440,288 / dev 1,166 / tune 1,235 / test 1,160) differs"
    say "      from our kyoto_wiki split: scores on one are not comparable with the other."
    if [ -s "$tarball" ] && { [ -z "$KFTT_SHA1" ] || [ "$(sha1_of "$tarball")" = "$KFTT_SHA1" ]; }; then
        say "ok  kftt/kftt-data-1.0.tar.gz (already downloaded)"
    else
        download "$KFTT_URL" "$tarball" || die "could not download $KFTT_URL"
    fi
    if [ -n "$KFTT_SHA1" ]; then
        got=$(sha1_of "$tarball")
        [ "$got" = "$KFTT_SHA1" ] || die "kftt-data-1.0.tar.gz: SHA-1 $got, expected $KFTT_SHA1 (the file is kept at $tarball; rerun with KFTT_SHA1= to accept it)"
        say "OK  kftt/kftt-data-1.0.tar.gz (SHA-1)"
    fi
    if [ ! -f "$dest/kftt-data-1.0/data/orig/kyoto-test.ja" ]; then
        tar -xzf "$tarball" -C "$dest" || die "could not unpack $tarball"
    fi
    for split in train:440288 dev:1166 tune:1235 test:1160; do
        want=${split#*:}
        for l in en ja; do
            n=$(wc -l < "$dest/kftt-data-1.0/data/orig/kyoto-${split%%:*}.$l" | tr -d ' ') \
                || die "missing kftt-data-1.0/data/orig/kyoto-${split%%:*}.$l"
            [ "$n" = "$want" ] || die "kyoto-${split%%:*}.$l has $n lines, KFTT 1.0 has $want"
        done
    done
    say "done: $dest/kftt-data-1.0 (untokenized text in data/orig/)"
    say "to train on it: data.corpus=kftt/kftt-data-1.0/data/orig data.train=kyoto-train data.dev=kyoto-dev data.test=kyoto-test"
    say "NOTE: this is the official KFTT split, NOT nmt's kyoto_wiki split (see data/README.md)."
}

# ----------------------------------------------------------------------------- verify

cmd_verify() {
    local dir=${1:-$ROOT} name rel rc ok=0 bad=0 missing=0 present=0
    [ -d "$dir" ] || die "$dir: no such folder"
    [ -f "$SUMS" ] || die "$SUMS not found"
    echo "verifying $dir against $SUMS"
    for name in $CORPORA; do
        if [ ! -d "$dir/$name" ]; then echo "  --      $name/ (not present)"; continue; fi
        present=$((present + 1))
        for rel in $(files_of "$name"); do
            rc=0; check_file "$dir" "$rel" || rc=$?
            case $rc in
                0) echo "  OK      $rel"; ok=$((ok + 1)) ;;
                1) echo "  FAILED  $rel (checksum mismatch)"; bad=$((bad + 1)) ;;
                *) echo "  MISSING $rel"; missing=$((missing + 1)) ;;
            esac
        done
    done
    if [ -d "$dir/kftt" ]; then
        echo "  --      kftt/ (official KFTT release: checked by download.sh kftt, not listed here)"
    fi
    echo "$ok OK, $bad failed, $missing missing; $present of $(echo "$CORPORA" | wc -w | tr -d ' ') corpora present"
    [ "$present" -gt 0 ] || { echo "$PROG: no corpus folder found under $dir" >&2; return 1; }
    [ "$bad" -eq 0 ] && [ "$missing" -eq 0 ]
}

cmd_list() {
    cat <<'EOF'
corpus                   splits                 license / use                      source
small_parallel_enja      train/dev/test         CC BY (Tanaka corpus)              github.com/odashi/small_parallel_enja
kyoto_wiki               train/dev/test (ours)  CC BY-SA 3.0                       NICT Kyoto Wikipedia corpus 2.01 (github.com/venali/BilingualCorpus)
wmt21_newstest_enja      test                   WMT: research/evaluation only      github.com/wmt-conference/wmt21-news-systems
wmt23_generaltest_enja   test                   WMT: research/evaluation only      github.com/wmt-conference/wmt23-news-systems
wmt24_generaltest_enja   test                   WMT: research/evaluation only      github.com/wmt-conference/wmt24-news-systems
ntrex128_enja            test                   CC BY-SA 4.0                       github.com/MicrosoftTranslator/NTREX
bsd_enja                 dev/test               CC BY-NC-SA 4.0 (non-commercial)   github.com/tsuruoka-lab/BSD
coursera_enja            dev/test               evaluation only                    github.com/shyyhs/CourseraParallelCorpusMining
tatoeba_manythings_enja  train                  CC BY 2.0 FR (Tatoeba)             manythings.org export (github.com/futurebridge/ZukaiML)
tatoeba_enja_split       train/dev/test (ours)  CC BY 2.0 FR (Tatoeba)             built: data/build_tatoeba_enja_split.py
small_parallel_enja_raw  test                   CC BY (Tanaka corpus)              built: data/build_small_parallel_enja_raw.py
kftt (own command)       train/dev/tune/test    CC BY-SA 3.0                       phontron.com/kftt (the official KFTT split)
EOF
    echo "root: $ROOT"
}

# ----------------------------------------------------------------------------- main

main() {
    [ $# -gt 0 ] || { usage; exit 2; }
    [ -f "$SUMS" ] || die "$SUMS not found"
    case $1 in
        -h|--help|help) usage; return 0 ;;
        list) cmd_list; return 0 ;;
        verify) shift; [ $# -le 1 ] || die "usage: $PROG verify [DIR]"; cmd_verify "$@"; return ;;
        kftt) [ $# -eq 1 ] || die "kftt takes no other argument"; CURRENT=kftt; get_kftt; return 0 ;;
    esac

    local names="" arg
    for arg in "$@"; do
        if [ "$arg" = all ]; then names="$names $CORPORA"
        elif [ "$arg" = kftt ]; then die "run 'kftt' on its own: $PROG kftt"
        elif is_corpus "$arg"; then names="$names $arg"
        else die "unknown corpus '$arg' (try: $PROG list)"
        fi
    done
    # shellcheck disable=SC2086  # names are single words, split on purpose
    set -- $names

    if [ $# -eq 1 ]; then
        CURRENT=$1; setup_work; "get_$1"; return 0
    fi
    # several corpora: each in its own process, so that one failure does not stop the others
    local failed="" name
    export NMT_DATA_ROOT="$ROOT"
    for name in "$@"; do
        bash "$HERE/download.sh" "$name" || failed="$failed $name"
    done
    if [ -n "$failed" ]; then
        echo "$PROG: failed:$failed" >&2
        return 1
    fi
    echo "all done; corpora in $ROOT"
}

main "$@"
