"""Regularized evolution over DSL programs: mutations, the search loop, the fitness cache, run directories."""

from ._breeding import mutation_settings as mutation_settings
from ._breeding import tournament as tournament
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
from ._evaluator import mean_result as mean_result
from ._evolution import Search as Search
from ._funnel import FunnelOutcome as FunnelOutcome
from ._funnel import run_funnel as run_funnel
from ._funnel_candidates import Candidate as Candidate
from ._funnel_candidates import gather_candidates as gather_candidates
from ._funnel_config import FunnelConfig as FunnelConfig
from ._funnel_config import funnel_config_from_dict as funnel_config_from_dict
from ._funnel_config import load_funnel_config as load_funnel_config
from ._funnel_stats import mean_and_se as mean_and_se
from ._funnel_stats import paired_comparison as paired_comparison
from ._funnel_stats import promote as promote
from ._inspect import read_run as read_run
from ._lion_scan import LionFamilyHit as LionFamilyHit
from ._lion_scan import first_lion_family as first_lion_family
from ._mutation import MUTATION_KINDS as MUTATION_KINDS
from ._mutation import MutationSettings as MutationSettings
from ._mutation import mutate as mutate
from ._progress import Progress as Progress
from ._rediscovery import PipelineRun as PipelineRun
from ._rediscovery import pipeline_runs as pipeline_runs
from ._rediscovery import run_pipeline as run_pipeline
from ._rediscovery_config import RediscoveryConfig as RediscoveryConfig
from ._rediscovery_config import load_rediscovery_config as load_rediscovery_config
from ._rediscovery_config import rediscovery_config_from_dict as rediscovery_config_from_dict
from ._rediscovery_report import write_rediscovery_reports as write_rediscovery_reports
from ._rundir import RunDirectory as RunDirectory
from ._rundir import RunDirectoryError as RunDirectoryError
from ._state import SearchError as SearchError
from ._state import SearchState as SearchState


def __getattr__(name: str):
    """``search.RayEvaluator`` on first use: importing Ray is slow, and most commands never need it."""
    if name == "RayEvaluator":
        from ._ray_pool import RayEvaluator

        return RayEvaluator
    raise AttributeError(f"module 'search' has no attribute {name!r}")
