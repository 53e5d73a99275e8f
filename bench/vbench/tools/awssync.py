"""aws s3 sync: not a backup tool, the yardstick for ``s3-copy`` (a per-phase reference, not in TOOLS).

``aws s3 sync DIR s3://bench/PREFIX --endpoint-url ...`` (AWS CLI) uploads vtool's local
repository directory to the Garage cluster, so it moves exactly the bytes ``vtool copy`` moves.
"""

import os

from .base import Cmd, Tool


class AwsSync(Tool):
    name = "aws-s3-sync"
    binary = "aws"

    def __init__(self, root: str, source: str):
        super().__init__(root, source)
        self.source = os.path.abspath(source)

    def s3_copy_cmd(self, s3, prefix):
        env = self.env()
        env.update(s3.aws_env())
        return Cmd([self.binary, "s3", "sync", "--only-show-errors", self.source, f"s3://{s3.bucket}/{prefix}",
                    "--endpoint-url", s3.endpoint], env=env)
