from setuptools import find_packages, setup

setup(
    name="tf1-graphsurgeon",  # the PyPI name "graphsurgeon" is taken by a placeholder
    version="0.1.0",
    description="Surgery on legacy TensorFlow 1 graphs and checkpoints for transfer learning",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["graphsurgeon", "graphsurgeon.*"]),
    python_requires=">=3.10",
    # TensorFlow is not pinned here so that any variant (tensorflow, tensorflow-cpu,
    # tensorflow-macos, ...) satisfies it; pick one with an extra.
    # crc32c (LGPL-2.1-or-later, linked at run time): the crc32c TensorFlow stores for every tensor, at memory
    # speed (checkpoint migration); 3.5x google-crc32c's speed here, and it lets go of the GIL
    install_requires=["numpy>=1.23", "tqdm>=4.60", "crc32c>=2.7", "tomli>=1.1; python_version<'3.11'"],
    extras_require={
        "tf": ["tensorflow>=2.12"],
        "cpu": ["tensorflow-cpu>=2.12"],
        "demo": ["scikit-learn>=1.0"],
        "beam": ["apache-beam>=2.50"],
        "plot": ["matplotlib>=3.5"],  # the demo's learning_curve.png
        "keras": ["h5py>=3.0"],  # merge-heads reads Keras .h5 files with it (TensorFlow's wheels depend on it too)
        # The tests also read the TF2 SavedModel inside basic-pitch==0.4.0's wheel; that package requires
        # tensorflow<2.15.1, so the Makefile installs it with --no-deps rather than listing it here.
        "test": ["pytest>=7", "pytest-xdist>=3", "scikit-learn>=1.0", "tf-slim>=1.1", "tf-keras", "h5py>=3.0"],
    },
    entry_points={"console_scripts": ["graphsurgeon=graphsurgeon._src.cli:main"]},
)
