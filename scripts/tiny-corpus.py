#!/usr/bin/env python3
"""Builds the training corpus of models/llamac-tiny.gguf from installed Debian packages, deterministically.

usage: scripts/tiny-corpus.py OUTDIR [HELDOUT_FILE]

Six languages, one file each in OUTDIR (en.txt de.txt es.txt it.txt pt.txt fr.txt), documents separated by a line
"%" (train with --doc-sep %):
  en  fortunes             (fortune-mod's collection, BSD licence)
  de  fortunes-de          (GPL-2+)
  es  fortunes-es          (public domain quotes, GPL-2+ packaging; the off/ sets are not used)
  it  fortunes-it          (public domain / freeware)
  pt  fortunes-br          (GPL-2+)
  fr  debian-reference-fr  (GPL-2+; the <p> paragraphs of the HTML chapters, as plain text)
Offensive sets (any "off" directory, fortunes-off is not used) and ASCII-art files are left out; fortunes that are
mostly not letters (drawings, tables) or very long are dropped, duplicates too. Each language's documents are
ordered by the SHA-256 of their text (a fixed shuffle); the first HELDOUT_DOCS go to the held-out sample (never
trained on), the next ones up to CAP_BYTES to the corpus. OUTDIR/SOURCES.txt records package versions and sizes.
"""
import hashlib
import html.parser
import os
import re
import subprocess
import sys

CAP_BYTES = 300_000  # per language: Portuguese (~230 kB) and French (~215 kB) have less, the others are capped
HELDOUT_DOCS = 20  # per language, for the held-out sample
EXCLUDE = {"art", "ascii-art", "asciiart", "banner"}  # drawings, not text

FORTUNES = [("en", "fortunes"), ("de", "fortunes-de"), ("es", "fortunes-es"), ("it", "fortunes-it"),
            ("pt", "fortunes-br")]
FRENCH = ("fr", "debian-reference-fr")


def pkg_version(pkg):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], check=True, capture_output=True,
                          text=True).stdout


def pkg_files(pkg):
    out = subprocess.run(["dpkg-query", "-L", pkg], check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.splitlines() if os.path.isfile(p) and not os.path.islink(p))


def clean(text):
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def is_prose(doc, max_len):
    if not 20 <= len(doc) <= max_len or "%" == doc.strip():
        return False
    visible = [c for c in doc if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    return letters >= 0.75 * len(visible) and max(len(ln) for ln in doc.split("\n")) <= 120


def fortune_docs(pkg):
    docs = []
    for path in pkg_files(pkg):
        parts = path.split("/")
        if not path.startswith("/usr/share/games/fortunes/") or "off" in parts or parts[-1] in EXCLUDE:
            continue
        if path.endswith((".dat", ".u8")):
            continue
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        for doc in re.split(r"^%[ \t]*$", text, flags=re.M):
            doc = clean(doc)
            if is_prose(doc, 800):
                docs.append(doc)
    return docs


class Paragraphs(html.parser.HTMLParser):
    """The text of <p> elements outside tables, code and tables of contents; inline markup is kept as its text."""

    SKIP = {"table", "pre", "script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras, self.cur, self.depth_p, self.depth_skip, self.stack_toc = [], [], 0, 0, []

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag == "div":
            self.stack_toc.append("toc" in cls.split())
        if tag in self.SKIP:
            self.depth_skip += 1
        if tag == "p":
            self.depth_p += 1
            self.cur = []

    def handle_endtag(self, tag):
        if tag == "div" and self.stack_toc:
            self.stack_toc.pop()
        if tag in self.SKIP and self.depth_skip:
            self.depth_skip -= 1
        if tag == "p" and self.depth_p:
            self.depth_p -= 1
            if not self.depth_skip and not any(self.stack_toc):
                self.paras.append(" ".join("".join(self.cur).split()))
            self.cur = []

    def handle_data(self, data):
        if self.depth_p:
            self.cur.append(data)


FR_WORDS = set("le la les des du de et est une un pour dans que qui sur pas avec vous ce cette sont par".split())
EN_WORDS = set("the and is of to you this that are for with".split())


def french_docs(pkg):
    docs = []
    for path in pkg_files(pkg):
        if not re.search(r"/(ch[0-9]+|pr01|apa)\.fr\.html$", path):
            continue
        p = Paragraphs()
        with open(path, encoding="utf-8") as f:
            p.feed(f.read())
        for para in p.paras:
            words = re.findall(r"\w+", para.lower())
            fr = sum(w in FR_WORDS for w in words)
            en = sum(w in EN_WORDS for w in words)
            if len(para) >= 80 and fr >= 4 and fr > 3 * en:
                # wrapped at 80 columns on word boundaries, like the fortunes
                out, line = [], ""
                for w in para.split(" "):
                    if line and len(line) + 1 + len(w) > 80:
                        out.append(line)
                        line = w
                    else:
                        line = w if not line else line + " " + w
                out.append(line)
                if is_prose("\n".join(out), 1500):
                    docs.append("\n".join(out))
    return docs


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    outdir = sys.argv[1]
    heldout_path = sys.argv[2] if len(sys.argv) == 3 else os.path.join(outdir, "heldout.txt")
    os.makedirs(outdir, exist_ok=True)
    sources, heldout = [], []
    for lang, pkg in FORTUNES + [FRENCH]:
        docs = french_docs(pkg) if lang == "fr" else fortune_docs(pkg)
        uniq = sorted(set(docs), key=lambda d: hashlib.sha256(d.encode("utf-8")).hexdigest())
        held, rest = uniq[:HELDOUT_DOCS], uniq[HELDOUT_DOCS:]
        chosen, size = [], 0
        for d in rest:
            n = len(d.encode("utf-8")) + 3
            if size + n > CAP_BYTES:
                break
            chosen.append(d)
            size += n
        body = "\n%\n".join(chosen) + "\n"
        tmp = os.path.join(outdir, lang + ".txt.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(body)
        os.replace(tmp, os.path.join(outdir, lang + ".txt"))
        heldout.append("\n%\n".join(held))
        sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
        sources.append(f"{lang} {pkg} {pkg_version(pkg)}: {len(chosen)} of {len(uniq)} documents, "
                       f"{len(body.encode('utf-8'))} bytes, sha256 {sha}")
    tmp = heldout_path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n%\n".join(heldout) + "\n")
    os.replace(tmp, heldout_path)
    tmp = os.path.join(outdir, "SOURCES.txt.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(sources) + "\n")
    os.replace(tmp, os.path.join(outdir, "SOURCES.txt"))
    print("\n".join(sources))


if __name__ == "__main__":
    main()
