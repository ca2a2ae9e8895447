"""The symdisc DSL: 45 array functions, programs as text, execution and a library."""

from . import library as library
from ._analysis import Analysis as Analysis
from ._analysis import analyze as analyze
from ._analysis import functional_hash as functional_hash
from ._analysis import prune as prune
from ._dataflow import dataflow as dataflow
from ._dataflow import to_dot as to_dot
from ._execute import ProgramOptimizerState as ProgramOptimizerState
from ._execute import execute as execute
from ._execute import to_optax as to_optax
from ._fingerprint import fingerprint as fingerprint
from ._ops import DIVISION_EPSILON as DIVISION_EPSILON
from ._ops import OPS as OPS
from ._ops import Op as Op
from ._ops import lookup as lookup
from ._program import Program as Program
from ._program import ProgramError as ProgramError
from ._program import Statement as Statement
from ._program import infer_kinds as infer_kinds
from ._program import parse as parse
from ._random import OP_NAMES as OP_NAMES
from ._random import random_constant as random_constant
from ._random import random_program as random_program
from ._random import random_statement as random_statement
from ._random import scope_kinds as scope_kinds
from ._types import Kind as Kind
