"""The files Star comes as: one per subject, the subject only in the file's name."""
from ..base import FileKind

FILES = (
    FileKind("star_reading", "SR.csv", "Renaissance Star Reading export (SR.csv) of the drop", "SR"),
    FileKind("star_math", "SM.csv", "Renaissance Star Math export (SM.csv) of the drop", "SM"),
    FileKind("star_early_literacy", "SEL.csv", "Renaissance Star Early Literacy export (SEL.csv) of the drop", "SEL"),
)
