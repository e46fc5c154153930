"""Write an offline HTML template for `dvc plots show`.

DVC's default page loads vega, vega-lite and vega-embed from a CDN through its `{scripts}`
placeholder, so it renders blank without a network. This template has no `{scripts}`
placeholder; instead it inlines the self-contained bundle from vl-convert-python, which sets
`window.vegaEmbed` exactly as DVC's plot divs call it.

Run from the repo root:  python -m catdog.plots_template   (writes .dvc/plots_template.html)
and point DVC at it:      dvc config plots.html_template plots_template.html
(DVC resolves a relative plots.html_template against the .dvc/ folder.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.atomic import save_text

TEMPLATE_FILE = Path(".dvc") / "plots_template.html"

# Placeholders that dvc_render's HTML.embed() fills; the bundle must not contain any of them.
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- vega + vega-lite + vega-embed, inlined by catdog.plots_template (vl-convert-python) -->
    <script type="text/javascript">
__BUNDLE__
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def build_template(bundle: str) -> str:
    """The page around `bundle`: DVC's default layout minus the CDN `{scripts}` placeholder."""
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in bundle:
            raise ValueError(f"the vega bundle contains the DVC placeholder {placeholder}")
    if "</script" in bundle.lower():
        raise ValueError("the vega bundle contains '</script', it cannot be inlined")
    return PAGE.replace("__BUNDLE__", bundle)


def vega_bundle() -> str:
    """vega, vega-lite and vega-embed with all dependencies; sets window.vegaEmbed."""
    import vl_convert

    return vl_convert.javascript_bundle()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TEMPLATE_FILE, help="template file to write")
    args = parser.parse_args()
    save_text(args.out, build_template(vega_bundle()))
    args.out.chmod(0o644)  # a tracked file: readable by everyone, like any checkout file
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
