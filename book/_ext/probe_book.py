"""This book's Sphinx extension (``sphinx.local_extensions`` in ``_config.yml``).

- **One parameters cell per chapter.** papermill puts the values a build passes (``injected-parameters``) after the
  chapter's defaults (``parameters``); the page shows a single cell: the defaults with the passed values written
  in, so it shows what the chapter actually ran with.
- **The presets table** of the methods page (``{presets-table}``), generated from ``probe_utils.experiments.PRESETS``
  and the paper's settings, never typed.
- **Data for the reader.** Every chapter page ends with links to the records it was built from (JSON, as one file
  and one file per run, copied into ``data/<chapter>/`` of the site) and to each of its tables as CSV.
- **Lighter, cleaner pages.** Scripts a page would load twice are loaded once (sphinx-thebe's configuration script
  is added twice and throws ``THEBE_JS_URL has already been declared``); sphinx-design's styles and script load only
  on pages that use its components; the ``without_fontawesome_js`` template filter lets
  ``book/_templates/layout.html`` drop the theme's 1.5 MB Font Awesome script (its CSS draws the icons).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from markupsafe import Markup

CHAPTER = re.compile(r"^notebooks/(?P<stem>\d\d_[A-Za-z0-9_]+)$")
DATA_DIR = "data"


# ---------------------------------------------------------------------------------------------------------------
# One parameters cell
# ---------------------------------------------------------------------------------------------------------------

def _assignments(source: str) -> dict[str, tuple[int, int, int, int, str]]:
    """Top-level ``name = value`` statements of a cell: name -> (line, col, end line, end col, value source)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out = {}
    for st in tree.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            v = st.value
            out[st.targets[0].id] = (v.lineno, v.col_offset, v.end_lineno, v.end_col_offset,
                                     ast.get_source_segment(source, v) or "")
    return out


def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def merge_parameter_cells(nb: dict) -> bool:
    """Write the values of ``nb``'s ``injected-parameters`` cell into its ``parameters`` cell and drop the injected
    cell (names the defaults lack are appended). Returns whether ``nb`` changed."""
    cells = nb.get("cells", [])
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
    p = next((i for i, t in enumerate(tags) if "parameters" in t), None)
    q = next((i for i, t in enumerate(tags) if "injected-parameters" in t), None)
    if p is None or q is None:
        return False
    defaults = _cell_source(cells[p])
    given = {k: v[4] for k, v in _assignments(_cell_source(cells[q])).items()}
    spots = _assignments(defaults)
    lines = [line.encode() for line in defaults.split("\n")]  # ast's column offsets count UTF-8 bytes
    changed = []
    for name, (l0, c0, l1, c1, old) in sorted(spots.items(), key=lambda kv: kv[1][:2], reverse=True):
        if name in given and given[name] != old:
            head, tail = lines[l0 - 1][:c0], lines[l1 - 1][c1:]
            lines[l0 - 1: l1] = [head + given[name].encode() + tail]
            changed.append(name)
    lines = [line.decode() for line in lines]
    extra = [f"{k} = {v}" for k, v in given.items() if k not in spots]
    note = (f"# the parameters this page ran with ({', '.join(sorted(changed))} set by the book build)"
            if changed else "# the parameters this page ran with (the chapter's defaults)")
    cells[p]["source"] = "\n".join([note, *lines, *extra]).rstrip("\n")
    del cells[q]
    return True


def notebook_parameters(nb: dict) -> dict[str, Any]:
    """The values a notebook ran with: its defaults, overridden by papermill's injected values (literals only)."""
    out: dict[str, Any] = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in nb.get("cells", []):
            if tag in cell.get("metadata", {}).get("tags", []):
                for name, spot in _assignments(_cell_source(cell)).items():
                    try:
                        out[name] = ast.literal_eval(spot[4])
                    except (ValueError, SyntaxError):
                        pass
    return out


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if not CHAPTER.match(docname) or not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    try:
        nb = json.loads(source[0])
    except ValueError:
        return
    if merge_parameter_cells(nb):
        source[0] = json.dumps(nb, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------------------
# The presets table
# ---------------------------------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]], classes: tuple[str, ...] = ()) -> nodes.table:
    table = nodes.table(classes=list(classes))
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]

    def row(cells: list[str]) -> nodes.row:
        r = nodes.row()
        for c in cells:
            r += nodes.entry("", nodes.paragraph(text=c))
        return r

    group += nodes.thead("", row(header))
    group += nodes.tbody("", *[row(r) for r in rows])
    return table


def presets_rows() -> tuple[list[str], list[list[str]], str]:
    """Header, rows and a note of the presets table: every preset's settings from ``PRESETS`` and the paper's."""
    from probe_utils.experiments import EXPERIMENTS, PRESETS
    from probe_utils.findings import PAPER_SETTINGS, PRESET_PURPOSE

    header = ["preset", "scale", "images", "width", "batch", "critic steps", "training images",
              "iterations (at most)", "early stop", "budget per run"]
    rows = []
    for name, p in PRESETS.items():
        stop = f"TV < {p.converge_tol:g}, from {p.min_steps:,}" if p.converge_tol is not None else "no"
        budget = f"{p.max_minutes:g} min of a reference core" if p.max_minutes is not None else "none"
        rows.append([name, PRESET_PURPOSE.get(name, ("", ""))[0], f"{p.image_size}×{p.image_size}", str(p.width),
                     str(p.batch_size), str(p.n_critic), f"{p.pool_size:,}", f"{p.steps:,}", stop, budget])
    s = PAPER_SETTINGS
    rows.append(["(the paper)", "the authors' runs", f"{s['image_size']}×{s['image_size']}", str(s["width"]),
                 str(s["batch_size"]), str(s["n_critic"]), "–", f"{s['steps']:,}", "no", "none"])
    larger = sorted({(e.min_image_size, n) for n, e in EXPERIMENTS.items() if e.min_image_size})
    note = ""
    if larger:
        sizes = sorted({size for size, _ in larger})
        note = "; ".join(f"{', '.join(n for s2, n in larger if s2 == size)} run at least {size}×{size} whatever "
                         f"the preset" for size in sizes)
    return header, rows, note


class PresetsTable(Directive):
    """``{presets-table}``: the presets' settings, generated from ``PRESETS`` at build time."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        header, rows, note = presets_rows()
        out: list[nodes.Node] = [_table(header, rows, ("probe-presets",))]
        text = ("Early stop: a run stops once the total-variation distance between consecutive probes of its "
                "measured distribution stays below the given value for three probes in a row, from the given "
                "iteration on.")
        if note:
            text += f" Image sizes: {note} (the experiments' minimum image size)."
        out.append(nodes.paragraph(text=text))
        return out


# ---------------------------------------------------------------------------------------------------------------
# Data for the reader
# ---------------------------------------------------------------------------------------------------------------

class _HTMLTables(HTMLParser):
    """The tables in an HTML fragment, as lists of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._depth = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self._depth += 1
            if self._depth == 1:
                self.tables.append([])
        elif self._depth == 1 and tag == "tr":
            self.tables[-1].append([])
        elif self._depth == 1 and tag in ("td", "th"):
            self._cell = []
        elif self._cell is not None and tag == "br":
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth -= 1
        elif self._depth == 1 and tag in ("td", "th") and self._cell is not None:
            if self.tables[-1]:
                self.tables[-1][-1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(fragment: str) -> list[list[list[str]]]:
    """Every top-level ``<table>`` of an HTML fragment as rows of cell texts."""
    parser = _HTMLTables()
    parser.feed(fragment)
    return [t for t in parser.tables if t]


def doctree_tables(doctree: nodes.Node) -> list[tuple[str, list[list[str]]]]:
    """Every table of a page (docutils tables and HTML tables in raw outputs), in order, with the title of the
    section that holds it."""
    out = []
    for node in doctree.findall(lambda n: isinstance(n, (nodes.table, nodes.raw))):
        if isinstance(node, nodes.table):
            if any(isinstance(a, nodes.table) for a in _ancestors(node)):
                continue
            tables = [[[e.astext().strip() for e in row.findall(nodes.entry)] for row in node.findall(nodes.row)]]
        elif "html" in node.get("format", "").split() and "<table" in node.astext():
            tables = html_tables(node.astext())
        else:
            continue
        section = next((a for a in _ancestors(node) if isinstance(a, nodes.section)), None)
        title = section[0].astext() if section is not None and len(section) else "table"
        out += [(title, t) for t in tables if t]
    return out


def _ancestors(node: nodes.Node):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent


def slug(text: str) -> str:
    """A file name from a title: lower case, runs of other characters as one hyphen, at most 60 characters."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-") or "table"


def write_csvs(tables: list[tuple[str, list[list[str]]]], folder: Path) -> list[tuple[str, str, int]]:
    """Write each table as ``<section slug>[-k].csv`` in ``folder``; returns (title, file name, data rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    written, seen = [], {}
    for title, rows in tables:
        base = slug(title)
        seen[base] = seen.get(base, 0) + 1
        name = f"{base}.csv" if seen[base] == 1 else f"{base}-{seen[base]}.csv"
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        (folder / name).write_text(buf.getvalue(), encoding="utf-8")
        written.append((title, name, max(len(rows) - 1, 0)))
    return written


def chapter_records(stem: str, preset: Any, root: Path) -> list[tuple[Path, dict]]:
    """The stored records of chapter ``stem``'s experiments at ``preset`` (``auto``: each experiment's largest-scale
    preset with records): (path under ``root``, record), current results version only."""
    from probe_utils.build import CHAPTERS
    from probe_utils.experiments import best_preset
    from probe_utils.store import RESULTS_VERSION, Store

    store = Store(root)
    out = []
    for exp in CHAPTERS.get(stem) or []:
        p = best_preset([exp], store) if preset == "auto" else preset
        folder = root / exp / str(p)
        for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            if path.name.startswith(".tmp-"):
                continue
            rec = store.read(path)
            if rec.get("results_version") == RESULTS_VERSION:
                out.append((path.relative_to(root), rec))
    return out


def _link(text: str, uri: str) -> nodes.reference:
    return nodes.reference("", text, refuri=uri, internal=False)


def _on_doctree_resolved(app, doctree: nodes.document, docname: str) -> None:
    m = CHAPTER.match(docname)
    if not m or app.builder.format != "html":
        return
    stem = m["stem"]
    folder = Path(app.outdir) / DATA_DIR / stem
    here = posixpath.dirname(docname)
    rel = lambda name: posixpath.relpath(f"{DATA_DIR}/{stem}/{name}", here or ".")  # noqa: E731
    items = []
    source = Path(app.env.doc2path(docname))
    params = notebook_parameters(json.loads(source.read_text())) if source.suffix == ".ipynb" else {}
    records = chapter_records(stem, params.get("preset", "auto"), Path(app.srcdir) / "book" / "results")
    if records:
        folder.mkdir(parents=True, exist_ok=True)
        for path, rec in records:
            target = folder / "records" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(rec, indent=1) + "\n")
        (folder / "records.json").write_text(json.dumps([rec for _, rec in records]) + "\n")
        exps = sorted({rec["experiment"] for _, rec in records})
        presets = sorted({rec["preset"] for _, rec in records})
        para = nodes.paragraph()
        para += nodes.Text(f"The {len(records)} stored runs of {', '.join(exps)} at the {', '.join(presets)} preset "
                           f"that this page reads: ")
        para += _link("records.json", rel("records.json"))
        para += nodes.Text(" (one JSON list; each record holds its settings, measurements, samples and provenance).")
        files = "".join(f'<li><a href="{rel("records/" + p.as_posix())}">{p.as_posix()}</a></li>'
                        for p, _ in records)
        item = nodes.list_item("", para)
        item += nodes.raw("", f"<details><summary>each record as its own file</summary><ul>{files}</ul></details>",
                          format="html")
        items.append(item)
    tables = doctree_tables(doctree)
    if tables:
        written = write_csvs(tables, folder)
        para = nodes.paragraph()
        para += nodes.Text("The tables of this page as CSV: ")
        for i, (title, name, n) in enumerate(written):
            para += _link(f"{title} ({n} rows)", rel(name))
            para += nodes.Text("; " if i < len(written) - 1 else ".")
        items.append(nodes.list_item("", para))
    if not items:
        return
    section = nodes.section(ids=["data-for-this-page"], names=["data for this page"], classes=["probe-data"])
    section += nodes.title(text="Data for this page")
    section += nodes.bullet_list("", *items)
    top = next(iter(doctree.findall(nodes.section)), None)
    (top if top is not None else doctree).append(section)


# ---------------------------------------------------------------------------------------------------------------
# Lighter, cleaner pages
# ---------------------------------------------------------------------------------------------------------------

FONTAWESOME_JS = re.compile(r'\s*<script[^>]*src="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*>\s*</script>')


def without_fontawesome_js(html: str) -> Markup:
    """``html`` without the theme's ``fontawesome.js`` script tag (a Jinja filter)."""
    return Markup(FONTAWESOME_JS.sub("", str(html)))


def _on_builder_inited(app) -> None:
    templates = getattr(app.builder, "templates", None)
    if templates is not None and hasattr(templates, "environment"):
        templates.environment.filters["without_fontawesome_js"] = without_fontawesome_js


#: Assets of extensions Jupyter Book always loads, needed only on pages that use them: (file names, the CSS class
#: prefix their elements carry). sphinx-design's are about 60 KB; this book uses none of its components.
OPTIONAL_ASSETS = ((("sphinx-design.min.css", "design-tabs.js"), "sd-"),)


def _uses(doctree, prefix: str) -> bool:
    """Whether any element of the page (or raw HTML in it) carries a class starting with ``prefix``."""
    if doctree is None:
        return True  # a page without a doctree (search, index): keep everything
    for node in doctree.findall(nodes.Element):
        if any(str(c).startswith(prefix) for c in node.get("classes", [])):
            return True
        if isinstance(node, nodes.raw) and f'class="{prefix}' in node.astext():
            return True
    return False


def _on_html_page_context(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    unused = {name for names, prefix in OPTIONAL_ASSETS if not _uses(doctree, prefix) for name in names}
    css = context.get("css_files")
    if css and unused:
        css[:] = [c for c in css if Path(getattr(c, "filename", str(c)) or "").name not in unused]
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for s in scripts:
        if Path(getattr(s, "filename", None) or "").name in unused:
            continue
        # an inline script may come once with filename None and once with "" (sphinx-thebe, togglebutton)
        key = (getattr(s, "filename", str(s)) or "",
               tuple(sorted((k, str(v)) for k, v in getattr(s, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(s)
    scripts[:] = kept


def setup(app) -> dict:
    app.add_directive("presets-table", PresetsTable)
    app.connect("source-read", _on_source_read)
    app.connect("doctree-resolved", _on_doctree_resolved)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("html-page-context", _on_html_page_context, priority=900)  # after the others add their scripts
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
