"""Sphinx extension: keep sphinx-thebe's scripts off the pages of this book.

Jupyter Book 1 always loads sphinx-thebe. With Sphinx 7 its inline configuration script is written
into every page twice, so the second copy throws "Identifier 'THEBE_JS_URL' has already been
declared", and the script names a bundle on unpkg.com. This book has no live code cells on the site
(`launch_buttons: thebe: false`), so both scripts are dropped from each page's context.
"""


def _is_thebe(script):
    filename = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return "sphinx-thebe" in filename or "THEBE_JS_URL" in body


def drop_thebe_scripts(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def setup(app):
    app.connect("html-page-context", drop_thebe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
