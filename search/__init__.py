"""Regularized evolution over DSL programs: mutations, the search loop, the fitness cache, run directories."""

from ._cache import FitnessCache as FitnessCache
from ._cache import analyze_program as analyze_program
from ._config import Config as Config
from ._config import ConfigError as ConfigError
from ._config import config_from_dict as config_from_dict
from ._config import load_config as load_config
from ._config import load_yaml as load_yaml
from ._evaluator import Completed as Completed
from ._evaluator import Evaluator as Evaluator
from ._evaluator import InProcessEvaluator as InProcessEvaluator
from ._evolution import Search as Search
from ._evolution import SearchError as SearchError
from ._evolution import mutation_settings as mutation_settings
from ._mutation import MUTATION_KINDS as MUTATION_KINDS
from ._mutation import MutationSettings as MutationSettings
from ._mutation import mutate as mutate
from ._progress import Progress as Progress
from ._rundir import RunDirectory as RunDirectory
from ._rundir import RunDirectoryError as RunDirectoryError
