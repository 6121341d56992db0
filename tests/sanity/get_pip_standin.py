"""Stand-in for ansible-test's get-pip bootstrap script, for hosts that cannot reach its host.

ansible-test runs the cached script with pip's arguments (plus get-pip's own
--no-setuptools/--no-wheel). This bootstraps pip with ensurepip instead, then installs
what was asked for from the configured index, trusting the system CA bundle:
ansible-test sets PIP_CONFIG_FILE=/dev/null, so pip's configured bundle is not read.
"""

import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
CA_BUNDLE = os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")

args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
if os.path.exists(CA_BUNDLE):
    args = ["--cert", CA_BUNDLE, *args]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
