"""Generate a large compose file with secrets for the validation benchmark.

Usage: python bench/gen_compose.py N OUTDIR

Writes OUTDIR/compose-N.yml (version "3.8") with N services. Every service has an
image, a command, environment, ports, deploy replicas, a healthcheck and two secrets:
one in short syntax and one in long syntax (target, uid, gid, mode 0440).

Top-level secrets: max(1, N // 2) defined with ``file:`` pointing at small dummy files
written in OUTDIR/secret-files/ (random content, not a real secret), plus
max(1, N // 20) external ones. The file is valid for ``docker stack config``.

The YAML is written as text (no YAML library needed) so the generator is fast and its
output is byte-for-byte predictable apart from the dummy file contents.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SECRET_DIR = "secret-files"


def file_secret_count(n: int) -> int:
    return max(1, n // 2)


def external_secret_count(n: int) -> int:
    return max(1, n // 20)


def _service(i: int, n_file: int, n_ext: int) -> str:
    short_src = f"file_secret_{i % n_file}"
    # Every fourth service takes its long-syntax secret from an external one.
    long_src = f"ext_secret_{(i // 4) % n_ext}" if i % 4 == 0 else f"file_secret_{(i + 1) % n_file}"
    return (
        f"  svc{i}:\n"
        f"    image: registry.example.com/team/app{i % 50}:1.{i % 10}\n"
        f'    command: ["serve", "--worker", "{i}", "--log-level", "info"]\n'
        f"    environment:\n"
        f'      APP_NAME: "svc{i}"\n'
        f'      APP_PORT: "80"\n'
        f'      APP_INDEX: "{i}"\n'
        f"      SECRET_FILE: /run/secrets/svc{i}_cred\n"
        f"    ports:\n"
        f'      - "{10000 + i}:80"\n'
        f"    deploy:\n"
        f"      replicas: {1 + i % 3}\n"
        f"    healthcheck:\n"
        f'      test: ["CMD", "true"]\n'
        f"      interval: 30s\n"
        f"      timeout: 5s\n"
        f"      retries: 3\n"
        f"    secrets:\n"
        f"      - {short_src}\n"
        f"      - source: {long_src}\n"
        f"        target: svc{i}_cred\n"
        f'        uid: "1000"\n'
        f'        gid: "1000"\n'
        f"        mode: 0440\n"
    )


def generate(n: int, outdir: Path) -> Path:
    """Write OUTDIR/compose-N.yml and its dummy secret files; return the compose path."""
    if n < 1:
        raise ValueError("N must be at least 1")
    outdir.mkdir(parents=True, exist_ok=True)
    n_file = file_secret_count(n)
    n_ext = external_secret_count(n)

    secret_dir = outdir / SECRET_DIR
    secret_dir.mkdir(exist_ok=True)
    for k in range(n_file):
        path = secret_dir / f"file_secret_{k}.txt"
        if not path.exists():
            # Random filler, deliberately not a credential of any kind.
            path.write_text(f"dummy-{os.urandom(12).hex()}\n", encoding="ascii")

    parts: list[str] = ['version: "3.8"\n', "services:\n"]
    parts.extend(_service(i, n_file, n_ext) for i in range(n))
    parts.append("secrets:\n")
    parts.extend(
        f"  file_secret_{k}:\n    file: ./{SECRET_DIR}/file_secret_{k}.txt\n" for k in range(n_file)
    )
    parts.extend(f"  ext_secret_{k}:\n    external: true\n" for k in range(n_ext))

    compose = outdir / f"compose-{n}.yml"
    compose.write_text("".join(parts), encoding="utf-8")
    return compose


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python bench/gen_compose.py N OUTDIR", file=sys.stderr)
        return 2
    try:
        n = int(argv[0])
        path = generate(n, Path(argv[1]))
    except (ValueError, OSError) as exc:
        print(f"gen_compose: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
