"""A stand-in for the `gh` command: `gh api` on a pull request's comments.

Serves the comments from the JSON file $FAKE_GH_STATE ({"comments": [...]}), changes it
as GitHub would, and records every call (arguments, standard input, whether a token was
given) as a JSON line in $FAKE_GH_LOG. It posts as the job's bot, or as the person
$FAKE_GH_LOGIN names. $FAKE_GH_FAIL makes every call fail as a
read-only token does.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

PAGE = 2  # comments per page, so that `--paginate` prints several arrays


def main(argv: list[str]) -> int:
    stdin = "" if sys.stdin.isatty() else sys.stdin.read()
    with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
        record = {"argv": argv, "stdin": stdin, "token": os.environ.get("GH_TOKEN", "")}
        log.write(json.dumps(record) + "\n")
    if os.environ.get("FAKE_GH_FAIL"):
        print("HTTP 403: Resource not accessible by integration", file=sys.stderr)
        return 1
    if argv[:1] != ["api"]:
        print(f"fake gh: unsupported command {argv}", file=sys.stderr)
        return 2
    state_file = Path(os.environ["FAKE_GH_STATE"])
    state = json.loads(state_file.read_text(encoding="utf-8"))
    method, path, arguments = "GET", "", argv[1:]
    while arguments:
        argument = arguments.pop(0)
        if argument in ("--method", "-X"):
            method = arguments.pop(0)
        elif argument == "--input":
            assert arguments.pop(0) == "-"
        elif argument == "--paginate":
            pass
        elif argument.startswith("-"):
            print(f"fake gh: unsupported option {argument}", file=sys.stderr)
            return 2
        else:
            path = argument
    comments = state["comments"]
    listing = re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)/comments(\?per_page=100)?", path)
    one = re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\d+)", path)
    if listing and method == "GET":
        for start in range(0, max(len(comments), 1), PAGE):
            print(json.dumps(comments[start : start + PAGE]))
        return 0
    if listing and method == "POST":
        new_id = max((c["id"] for c in comments), default=100) + 1
        url = f"https://github.com/{listing[1]}/pull/{listing[2]}#issuecomment-{new_id}"
        comment = {
            "id": new_id,
            "body": json.loads(stdin)["body"],
            "html_url": url,
            "user": _poster(),
        }
        comments.append(comment)
    elif one and method == "PATCH":
        matching = [c for c in comments if c["id"] == int(one[1])]
        if not matching:
            print("HTTP 404: Not Found", file=sys.stderr)
            return 1
        comment = matching[0]
        comment["body"] = json.loads(stdin)["body"]
    else:
        print(f"fake gh: unsupported call {method} {path}", file=sys.stderr)
        return 2
    state_file.write_text(json.dumps(state), encoding="utf-8")
    print(json.dumps(comment))
    return 0


def _poster() -> dict[str, str]:
    """Who the token posts as: $FAKE_GH_LOGIN (a person's token), else the job's bot."""
    login = os.environ.get("FAKE_GH_LOGIN")
    if login:
        return {"login": login, "type": "User"}
    return {"login": "github-actions[bot]", "type": "Bot"}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
