"""Built-in policy presets: rule sets a policy pulls in with `include: [preset:NAME]` (pure data).

Each preset is an ordinary policy document, parsed by the same parser as a user's file (its source is
`preset:NAME`, so an error would read `preset:pypi:4: ...`). Its rules get the ids `preset:NAME/1`,
`preset:NAME/2`, ... in the order the document lists them (allow rules, then deny rules), and those ids are
what audit lines and 403 reasons show. A preset's rules do not see the including file's `defaults`: every
rule here names its ports, so a preset means the same thing wherever it is included.

`description` says, in words, what a preset allows; it feeds docs/policy.md and `--help` texts.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["PRESETS", "PRESET_PREFIX", "Preset"]

PRESET_PREFIX: Final = "preset:"


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    description: str  # what it allows, in one paragraph
    text: str  # the policy document (YAML)

    @property
    def source(self) -> str:
        """The source name of its rules (`preset:NAME`), as in `preset:NAME:LINE`."""
        return PRESET_PREFIX + self.name


_PYPI = Preset(
    "pypi",
    "Installing Python packages from PyPI (pip, uv, poetry): GET and HEAD over HTTPS on pypi.org (the simple "
    "index and the JSON API) and files.pythonhosted.org (the package files). Read-only: uploads go to "
    "upload.pypi.org, which it does not allow.",
    """\
version: 1
allow:
  - domain: pypi.org
    ports: [443]
    methods: [GET, HEAD]
    comment: the simple index (/simple/NAME/) and the JSON API (/pypi/NAME/json)
  - domain: files.pythonhosted.org
    ports: [443]
    methods: [GET, HEAD]
    comment: package files (wheels and sdists)
""",
)

_NPM = Preset(
    "npm",
    "Installing JavaScript packages from the npm registry (npm, pnpm, yarn): GET and HEAD over HTTPS on "
    "registry.npmjs.org (package metadata and tarballs), including the metadata of scoped packages, which npm "
    "requests with the name's `/` encoded (/@scope%2fname, matched as sent by a raw_paths rule). Read-only: no "
    "`npm publish`, and no `npm audit` (a POST to /-/npm/v1/security/advisories/bulk; npm install only warns "
    "when it fails).",
    """\
version: 1
allow:
  - domain: registry.npmjs.org
    ports: [443]
    methods: [GET, HEAD]
    comment: package metadata and tarballs
  - domain: registry.npmjs.org
    ports: [443]
    methods: [GET, HEAD]
    paths: ["/@*%2F*"]
    raw_paths: true
    comment: metadata of @scope/name, requested as /@scope%2fname; '*' never matches another encoded '/'
""",
)

_GITHUB_READONLY = Preset(
    "github-readonly",
    "Cloning and fetching from GitHub over HTTPS, and reading from it: git's smart-HTTP fetch on github.com "
    "(GET /OWNER/REPO[.git]/info/refs?service=git-upload-pack and POST /OWNER/REPO[.git]/git-upload-pack), and "
    "GET and HEAD on codeload.github.com (archives), raw.githubusercontent.com (raw files), "
    "objects.githubusercontent.com (release assets) and api.github.com (the REST API, read-only; GraphQL is a "
    "POST and not included). Pushing is denied by an explicit deny rule, so a `git push` is logged with that "
    "rule (preset:github-readonly/4 or /5). Git LFS and the github.com web pages are not included.",
    """\
version: 1
allow:
  - domain: github.com
    ports: [443]
    methods: [GET]
    paths: ["/*/*/info/refs"]
    query: {service: git-upload-pack}
    comment: git clone/fetch, step 1 (ref advertisement); '*' also matches 'REPO.git'
  - domain: github.com
    ports: [443]
    methods: [POST]
    paths: ["/*/*/git-upload-pack"]
    comment: git clone/fetch, step 2 (the pack)
  - domains: [codeload.github.com, raw.githubusercontent.com, objects.githubusercontent.com, api.github.com]
    ports: [443]
    methods: [GET, HEAD]
    comment: archives, raw files, release assets and the REST API, read-only
deny:
  - domain: github.com
    paths: ["/**/info/refs"]
    query: {service: git-receive-pack}
    comment: git push, step 1 (ref advertisement for a push)
  - domain: github.com
    paths: ["/**/git-receive-pack"]
    comment: git push, step 2 (the pack)
""",
)

_ANTHROPIC = Preset(
    "anthropic",
    "The Anthropic API (Claude Code, the Anthropic SDKs): any method and path over HTTPS on api.anthropic.com. "
    "Telemetry and error-reporting hosts are not included.",
    """\
version: 1
allow:
  - domain: api.anthropic.com
    ports: [443]
    comment: the Messages API (streamed as server-sent events) and the rest of the API
""",
)

_OPENAI = Preset(
    "openai",
    "The OpenAI API (the OpenAI SDKs, Codex with an API key): any method and path over HTTPS on api.openai.com. "
    "Codex signed in with a ChatGPT account talks to chatgpt.com instead, which this preset does not include "
    "(add a rule such as {domain: chatgpt.com, paths: ['/backend-api/**']}).",
    """\
version: 1
allow:
  - domain: api.openai.com
    ports: [443]
    comment: the OpenAI API
""",
)

PRESETS: Final[Mapping[str, Preset]] = MappingProxyType(
    {preset.name: preset for preset in (_PYPI, _NPM, _GITHUB_READONLY, _ANTHROPIC, _OPENAI)}
)
