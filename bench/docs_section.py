"""Rewriting a benchmark's own results in docs/benchmarks.md, between its markers."""
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def update_docs(script, text, docs=DOCS):
    """Replace the results of *script* (e.g. ``"alerts.py"``) in *docs* with *text*: what lies
    between ``<!-- bench/<script> results: begin -->`` and its ``end`` marker. The file is
    replaced whole (written beside it, then renamed), never left half-written."""
    begin_mark = f"<!-- bench/{script} results: begin -->"
    end_mark = f"<!-- bench/{script} results: end -->"
    document = docs.read_text(encoding="utf-8")
    begin, end = document.find(begin_mark), document.find(end_mark)
    if begin < 0 or end < begin:
        raise RuntimeError(f"{docs} has no {begin_mark} … {end_mark} section to update")
    updated = document[:begin + len(begin_mark)] + "\n\n" + text + "\n\n" + document[end:]
    partial = docs.with_suffix(".md.partial")
    partial.write_text(updated, encoding="utf-8")
    partial.replace(docs)
