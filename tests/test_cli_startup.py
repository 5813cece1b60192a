"""`solstice --help` and `list` start fast: they never import torch & co. (checked in fresh interpreters)."""

import subprocess
import sys

from conftest import cli_env


def test_cli_import_does_not_load_torch():
    code = (
        "import sys; import solstice.cli.main, solstice.cli.commands, solstice.core.registry, "
        "solstice.models, solstice.core.runner; "
        "bad = [m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    assert out.stdout.strip() == "[]"


def test_help_and_list_stay_light():
    # the start-up cost of the CLI is its imports: --help and list must not pull in the heavy stack
    code = (
        "import sys, contextlib, io; from solstice.cli.main import main\n"
        "for argv in (['--help'], ['list']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: main(argv)\n"
        "        except SystemExit as e: assert e.code in (0, None), e.code\n"
        "print([m for m in ('torch', 'transformers', 'sklearn', 'scipy', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_list_shows_all_twenty_papers():
    r = subprocess.run([sys.executable, "-m", "solstice", "list", "--json"], capture_output=True, text=True, env=cli_env(SOLSTICE_PLUGINS=""))
    import json

    ids = {row["id"] for row in json.loads(r.stdout)}
    assert {"bigcodebench", "wildteaming", "judging_judges", "longrag"} <= ids and len(ids) == 20
