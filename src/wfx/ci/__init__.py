"""wfx in continuous integration: the pull-request comment the GitHub Action posts.

`python -m wfx.ci.pr_comment` is what `action.yml` runs; :mod:`wfx.ci.comment` writes
the comment (pure), :mod:`wfx.ci.github` finds, creates and updates it through `gh api`.
"""
