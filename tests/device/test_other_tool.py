"""The adapter example of docs/user/device-contract.rst, run as written, in
front of a vendor tool with another command line and output."""

import os
import re

from .helpers import RouterTestCase
from .router import REPO

DOC = os.path.join(REPO, "docs", "user", "device-contract.rst")

# A vendor tool with its own interface: -i IMAGE -d PORT [--rescue], and
# bare "NN.N%" progress lines. It drives the emulated modem through uxfp.
ACME_FLASH = r"""#!/bin/sh
status=$(mktemp)
while [ $# -gt 0 ]; do
    case $1 in
    -i) image=$2; shift 2 ;;
    -d) port=$2; shift 2 ;;
    --rescue) rescue=--lossrecovery; shift ;;
    *) shift ;;
    esac
done
{ uxfp --file "$image" --port "$port" ${rescue:+"$rescue"}; echo $? >"$status"; } |
    tr '\r' '\n' |
    sed 's/^\[+\] flashing \[[a-z]*\] \([0-9]*\)%.*/\1.5%/'
code=$(cat "$status"); rm -f "$status"
exit "$code"
"""


def adapter_from_docs():
    with open(DOC) as f:
        text = f.read()
    block = re.search(
        r"\n    #!/bin/sh\n    # /usr/bin/acme-flash-adapter.*?\n\n", text, re.S
    )
    return "\n".join(line[4:] for line in block.group(0).strip("\n").splitlines())


class TestAnotherVendorsTool(RouterTestCase):
    def install(self, name, text):
        path = os.path.join(self.router.bin_dir, name)
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o755)
        return path

    def test_documented_adapter(self):
        self.install("acme-flash", ACME_FLASH)
        adapter = self.install("acme-flash-adapter", adapter_from_docs())
        result = self.upgrade(tool=adapter)
        messages = self.assert_finished(result, 0, "success")
        progress = [m for m in messages if m.startswith("[+] flashing [acme]")]
        self.assertIn("[+] flashing [acme] 50.5%, transferred 0/0 B", progress)
        percents = {int(r[3]) for r in self.journal() if "[acme]" in r[4]}
        self.assertIn(55, percents)
        self.assertIn("[+] firmware uploaded successfully!", messages)

    def test_documented_adapter_reports_the_tools_failure(self):
        self.install("acme-flash", ACME_FLASH)
        adapter = self.install("acme-flash-adapter", adapter_from_docs())
        self.router.set_fault("interrupt")
        result = self.upgrade(tool=adapter)
        self.assert_finished(result, 3, "aborted")
