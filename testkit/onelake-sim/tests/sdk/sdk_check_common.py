"""What the SDK check scripts share: SharedKey credentials for the simulator (the SDKs send
bearer tokens over https only; the simulator also takes SharedKey, unverified) and `expect`."""
import base64
import sys

CRED = {"account_name": "onelake", "account_key": base64.b64encode(b"k" * 32).decode()}


def expect(cond, what):
    """Stops the script with a non-zero exit on the first unexpected answer."""
    if not cond:
        print("FAILED:", what)
        sys.exit(1)
    print("ok:", what)
