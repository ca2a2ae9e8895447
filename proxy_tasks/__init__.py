"""Proxy tasks: small models trained in jitted JAX to score candidate optimizers.

``get(name).evaluate(program, seed)`` trains a small model with a DSL program and
returns a ``Result`` (fitness: higher is better). The program runs as data through a
compiled interpreter (``_interpreter.py``), so evaluating a new program does not
compile anything. Every dataset has disjoint train, validation and test splits: fitness
is measured on validation, ``Result.test_fitness`` on test (for reports, never for
selection). ``tune`` / ``tuned`` tune a program's learning rate and weight decay.
"""

from ._data import load_digits_dataset as load_digits_dataset
from ._interpreter import encode as encode
from ._markov import source_entropies as source_entropies
from ._registry import TASK_CONFIGS as TASK_CONFIGS
from ._registry import build as build
from ._registry import config as config
from ._registry import get as get
from ._registry import names as names
from ._registry import with_schedule as with_schedule
from ._schedules import ScheduleConfig as ScheduleConfig
from ._schedules import make_schedule as make_schedule
from ._task import WORST_FITNESS as WORST_FITNESS
from ._task import Dataset as Dataset
from ._task import Model as Model
from ._task import Result as Result
from ._task import StallRule as StallRule
from ._task import Task as Task
from ._task import TaskConfig as TaskConfig
from ._tune import TuneResult as TuneResult
from ._tune import find_lr_constant as find_lr_constant
from ._tune import find_wd_constant as find_wd_constant
from ._tune import tune as tune
from ._tune import tuned as tuned
from ._tune import with_constant as with_constant
