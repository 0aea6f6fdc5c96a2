"""The browser app: `python -m ui3d.app [--outputs DIR] [--host 127.0.0.1] [--port N]` (gradio).

`runs.py` reads an outputs folder (runs, their files; nothing outside it), `jobs.py` checks and starts runs as
`launch.py` child processes, one at a time, `ui.py` is the page, `screenshot.py` renders it in headless Chromium.
"""
