"""Writing a report-like page: markdown and HTML from titled tables and figures, into a folder swapped in whole.

A section is (title, head, body) or (title, head, body, caption): the caption says what the table shows, for a
reader new to the study. Figures are (file name, caption) pairs of PNGs in the same folder.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

CSS = ("body{font-family:sans-serif;margin:2em;max-width:1500px;line-height:1.4}"
       "table{border-collapse:collapse;margin-bottom:0.5em;font-size:14px}"
       ".wrap{overflow-x:auto;margin-bottom:2em}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
       "th{background:#eee}td.word{text-align:left}td.text{text-align:left;min-width:20em;max-width:40em}"
       ".caption{color:#333;max-width:60em}figure{display:inline-block;margin:0 1em 2em 0;vertical-align:top}"
       "figcaption{max-width:36em;color:#333}img{max-width:100%}")


_NUMBER = re.compile(r"[-+–−\d.,%±\[\] /()]*")  # numbers, ranges, intervals, "3/5": right-aligned


def _td(c, text: bool) -> str:
    kind = "text" if text else "" if _NUMBER.fullmatch(str(c)) else "word"
    return f"<td class='{kind}'>{html.escape(str(c))}</td>" if kind else f"<td>{html.escape(str(c))}</td>"


def _parts(section):
    title, head, body = section[:3]
    return title, head, body, section[3] if len(section) > 3 else ""


def markdown(title: str, notes: list[str], sections, figures, figures_title="Plots") -> str:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + [""]
    for sec in sections:
        name, head, body, caption = _parts(sec)
        lines += [f"## {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body] + [""]
        lines += [f"*{caption}*", ""] if caption else []
    if figures:
        lines += [f"## {figures_title}", ""] + [f"![{cap}]({name})\n\n*{cap}*\n" for name, cap in figures]
    return "\n".join(lines)


def html_page(title: str, notes: list[str], sections, figures, figures_title="Plots", text_columns=()) -> str:
    """``text_columns``: header names whose cells are free text (left-aligned, wrapped)."""
    e = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style>"
             f"</head><body><h1>{e(title)}</h1><ul>"]
    parts += [f"<li>{e(n)}</li>" for n in notes] + ["</ul>"]
    for sec in sections:
        name, head, body, caption = _parts(sec)
        text = [h in text_columns for h in head]
        parts.append(f"<h2>{e(name)}</h2>" + (f"<p class='caption'>{e(caption)}</p>" if caption else ""))
        parts.append("<div class='wrap'><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(_td(c, t) for c, t in zip(row, text)) + "</tr>" for row in body]
        parts.append("</table></div>")
    if figures:
        parts.append(f"<h2>{e(figures_title)}</h2>")
        parts += [f"<figure><img src='{e(n)}' alt='{e(c)}'><figcaption>{e(c)}</figcaption></figure>"
                  for n, c in figures]
    return "\n".join(parts + ["</body></html>"])


def write_folder(out: Path, fill: Callable[[Path], None]) -> None:
    """fill(tmp) writes the folder's files; tmp is then renamed to ``out`` (an old ``out`` is swapped out only
    once the new one is complete), so a failure leaves the previous folder untouched and nothing half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():  # swap: move the old folder aside, move the new one in, then drop the old one
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / "previous")
            try:
                tmp.rename(out)
            except OSError:
                (old / "previous").rename(out)  # put the previous folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
