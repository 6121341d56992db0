#!/usr/bin/python
# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dkim_key
short_description: Ensure a DKIM private key exists in the controller's key store
version_added: "0.1.0"
description:
  - Ensures C(<store>/<domain>/<selector>.private) exists, as an unencrypted PEM PKCS#8
    private key with mode C(0600) in directories with mode C(0700).
  - Never overwrites an existing key. Rotating a key means adding a new selector to the
    domain's C(dkim_selectors); a key of another type under the same selector is an error.
  - Returns the public key as DKIM publishes it and the TXT record value split into
    character-strings of at most 255 bytes.
  - "Meant to run on the controller (C(delegate_to: localhost), C(run_once: true)), where the
    key store lives; needs the Python C(cryptography) library there."
options:
  store:
    description: The key store directory (the model's C(bulkmail_dkim_key_store)).
    type: path
    required: true
  domain:
    description: The signing domain, for example C(example.com).
    type: str
    required: true
  selector:
    description: The DKIM selector, for example C(s2026a).
    type: str
    required: true
  type:
    description:
      - C(rsa) (the one every receiver verifies) or C(ed25519) (RFC 8463; publish it next to
        an rsa selector, not instead of it).
    type: str
    choices: [rsa, ed25519]
    default: rsa
  bits:
    description: RSA key size; ignored for ed25519.
    type: int
    default: 2048
notes:
  - In check mode a missing key is generated in memory only, so C(public_key) is a
    placeholder that differs on every run.
attributes:
  check_mode:
    support: full
    description: A missing key is generated in memory only and nothing is written.
  diff_mode:
    support: none
    description: Private keys are never shown.
seealso:
  - name: RFC 6376
    description: DomainKeys Identified Mail (DKIM) Signatures.
    link: https://www.rfc-editor.org/rfc/rfc6376
  - name: RFC 8463
    description: A New Cryptographic Signature Method for DKIM (Ed25519).
    link: https://www.rfc-editor.org/rfc/rfc8463
author:
  - bulkmail.infra developers (@bulkmail)
"""

EXAMPLES = r"""
- name: Ensure the DKIM key of example.com, selector s2026a
  bulkmail.infra.dkim_key:
    store: "{{ bulkmail_dkim_key_store }}"
    domain: example.com
    selector: s2026a
  delegate_to: localhost
  run_once: true
  become: false
  register: dkim

- name: Show the TXT record to publish at s2026a._domainkey.example.com
  ansible.builtin.debug:
    msg: "{{ dkim.txt }}"
"""

RETURN = r"""
path:
  description: The private key file.
  returned: always
  type: str
  sample: /srv/secrets/dkim/example.com/s2026a.private
domain:
  description: The signing domain.
  returned: always
  type: str
  sample: example.com
selector:
  description: The selector.
  returned: always
  type: str
  sample: s2026a
key_type:
  description: rsa or ed25519.
  returned: always
  type: str
  sample: rsa
bits:
  description: The key size (256 for ed25519).
  returned: always
  type: int
  sample: 2048
public_key:
  description:
    - Base64 of the DER SubjectPublicKeyInfo (rsa) or of the raw 32-byte key (ed25519),
      the value of the DKIM record's C(p=) tag.
  returned: always
  type: str
  sample: MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA...
txt:
  description: The DKIM TXT record value as character-strings of at most 255 bytes.
  returned: always
  type: list
  elements: str
  sample: ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA..."]
created:
  description: Whether the key was generated in this run (or would be, in check mode).
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import ensure_key
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.keys import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "store": {"type": "path", "required": True},
            "domain": {"type": "str", "required": True},
            "selector": {"type": "str", "required": True},
            "type": {"type": "str", "choices": ["rsa", "ed25519"], "default": "rsa"},
            "bits": {"type": "int", "default": 2048},
        },
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(
            msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR
        )
    params = module.params
    try:
        key = ensure_key(
            params["store"],
            params["domain"],
            params["selector"],
            params["type"],
            params["bits"],
            check_mode=module.check_mode,
        )
    except (ModelError, OSError) as error:
        module.fail_json(msg=str(error))
    if key.key_type == "rsa" and key.bits != params["bits"] and not key.created:
        module.warn(
            f"{key.path} is a {key.bits}-bit key, not {params['bits']}: existing keys are kept; "
            "use a new selector to publish a key of the new size"
        )
    module.exit_json(
        changed=key.changed,
        path=key.path,
        domain=params["domain"],
        selector=params["selector"],
        key_type=key.key_type,
        bits=key.bits,
        public_key=key.public_key,
        txt=key.txt,
        created=key.created,
    )


if __name__ == "__main__":
    main()
