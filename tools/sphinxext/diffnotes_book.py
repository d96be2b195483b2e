"""Small Sphinx fixes for the diffnotes book (loaded via ``sphinx.local_extensions``).

* De-duplicate identical ``<script>`` tags. With Sphinx 7.4, sphinx-thebe 0.3
  registers its inline configuration script (``const THEBE_JS_URL = ...``) twice,
  and the second copy throws ``SyntaxError: Identifier 'THEBE_JS_URL' has already
  been declared`` in every page's console (sphinx-togglebutton's inline
  configuration is doubled the same way, harmlessly).
* Drop the saved ipywidgets state (``application/vnd.jupyter.widget-state+json``).
  The book loads no widget manager (``nb_ipywidgets_js: {}``), so nothing reads
  it; it only made each chapter page a few hundred kB heavier. Explorers show
  their static ``text/html`` control instead (frames precomputed at build time,
  see ``diffnotes/widgets/_static.py``).
"""

from __future__ import annotations

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _clean_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set = set()
    unique = []
    for script in scripts:
        attrs = getattr(script, "attributes", {}) or {}
        # an inline script has filename None or "" depending on who added it
        filename = str(getattr(script, "filename", script) or "")
        key = (filename, tuple(sorted(attrs.items())))
        if key in seen or attrs.get("type") == WIDGET_STATE:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def setup(app):
    # run after the other html-page-context handlers have added their scripts
    app.connect("html-page-context", _clean_scripts, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
