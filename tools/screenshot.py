"""Take a README screenshot of a chat app: the real app, a real browser, a real answer.

    python tools/screenshot.py APP --message TEXT --output PNG

run from the repository root. It starts APP with `chainlit run` on
127.0.0.1 (from a temporary working folder, so Chainlit's files land there),
opens it in headless Chromium, sends TEXT, waits until the answer has
finished streaming and saves the page as PNG. The app loads its model as
usual: from its default location, or from the file named by the app's
environment variable (e.g. `MODEL_PATH=... python tools/screenshot.py ...`).
The commands that made the committed screenshots are in each app's README.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from chat_browser import chainlit_server, chromium_browser, last_answer, open_chat, send_message


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("app", type=Path, help="the app's file, e.g. ch06/04_user_interface/app.py")
    parser.add_argument("--message", required=True, help="what to type into the chat")
    parser.add_argument("--output", type=Path, required=True, help="the PNG file to write")
    parser.add_argument("--height", type=int, default=700,
                        help="the browser window's height in pixels (a long answer needs more)")
    args = parser.parse_args(argv)
    if not args.app.is_file():
        parser.error(f"argument app: no such file: {args.app}")
    if not args.output.parent.is_dir():
        parser.error(f"argument --output: folder {args.output.parent} does not exist")
    return args


def main(argv=None):
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    with (tempfile.TemporaryDirectory(prefix="chainlit-") as workdir,
          chainlit_server(args.app, workdir) as server,
          sync_playwright() as playwright,
          chromium_browser(playwright) as browser):
        page = open_chat(browser, server, args.height)
        send_message(page, args.message)
        answer = last_answer(page, 2)
        page.screenshot(path=args.output)
    print(f"Saved {args.output}; the app answered: {answer}")


if __name__ == "__main__":
    sys.exit(main())
