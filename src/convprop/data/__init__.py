"""Data sets and batching: the embedded digits, IDX files (Fashion-MNIST), folders of images,
NumPy arrays; seeded augmentation of batches."""

from convprop.data.augment import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    batch_generator,
    standard_augmentation,
)
from convprop.data.dataset import ArrayDataset, ChannelStats, from_arrays, normalize
from convprop.data.digits import load_digits
from convprop.data.errors import DataError
from convprop.data.folder import load_image_folder, load_image_folders
from convprop.data.idx import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    load_fashion_mnist,
    load_mnist_dir,
    read_idx,
    write_idx,
)
from convprop.data.loader import DataLoader
from convprop.data.registry import DATASETS, load_dataset
from convprop.data.split import stratified_split

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "ArrayDataset",
    "ChannelStats",
    "Compose",
    "DataError",
    "DataLoader",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "batch_generator",
    "from_arrays",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_image_folders",
    "load_mnist_dir",
    "normalize",
    "read_idx",
    "standard_augmentation",
    "stratified_split",
    "write_idx",
]
