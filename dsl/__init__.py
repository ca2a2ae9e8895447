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
from ._simplify import Simplification as Simplification
from ._simplify import SimplificationStep as SimplificationStep
from ._simplify import simplify as simplify
from ._types import Kind as Kind
