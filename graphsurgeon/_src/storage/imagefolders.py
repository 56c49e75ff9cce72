"""retrain.py's image-folder layout, listed: one sub-folder per class, the images at its top level.

What is read, and what is refused (each with one error naming the path):

* Class folders are the image folder's sub-folders whose names do not start with ``.``, sorted;
  other files at the top are ignored. A class folder may be a symlink to a folder inside the
  image folder (a hidden one, or a folder inside a class folder). Refused are: a symlink at the
  top (its name not starting with ``.``) that loops or points nowhere (whether it was meant as a
  class cannot be told); a class-folder symlink to a folder outside the image folder, to the image
  folder itself, or to another class's folder (one folder of images is one class); a class
  folder's name that is not UTF-8 (class names become the exported model's labels).
* Images are the files at the top of a class folder whose names end in an image extension (in any
  case); a name need not be UTF-8 (the file is read by its bytes). An image may be a symlink to a
  file inside the image folder: it is read as that file, labelled by the folder it is listed in (as
  a copy would be). Refused are image symlinks that loop, that point nowhere, or that resolve
  outside the image folder.

Everything a data set holds thus lies inside its folder, so that the folder names the data set.
"""
from __future__ import annotations

import errno
import os
import stat

from graphsurgeon._src.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def list_image_folder(root: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders) and ``[(relative path, class id)]``, sorted within each class.

    Raises:
      DataError: no class folders, a class folder without images, or a symlink refused as the
        module docstring says; naming the path.
    """
    real_root = os.path.realpath(root)
    folders = {}  # class name -> its real path
    for name in sorted(os.listdir(root)):
        if name.startswith("."):
            continue
        path = os.path.join(root, name)
        if not _resolves_to_dir(path):
            continue
        _check_utf8(name, path)
        real = _inside(path, real_root, "class folder")
        if real == real_root:
            raise DataError(f"{path}: a symlink to the image folder itself; a class folder must hold its own images")
        same = [c for c, r in folders.items() if r == real]
        if same:
            raise DataError(f"{path}: the same folder as class folder '{same[0]}' ({real}); a folder of images can "
                            "be one class only")
        folders[name] = real
    classes = list(folders)
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected one folder of images per class)")
    files = []
    for ci, c in enumerate(classes):
        names = sorted(f for f in os.listdir(os.path.join(root, c)) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise DataError(f"{os.path.join(root, c)}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        for n in names:
            _inside(os.path.join(root, c, n), real_root, "image")
        files += [(os.path.join(c, n), ci) for n in names]
    return classes, files


def _resolves_to_dir(path: str) -> bool:
    """Whether ``path`` is a folder (following symlinks).

    Raises:
      DataError: ``path`` is a symlink that loops or points nowhere (it cannot be told whether it
        was meant as a class).
    """
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path):
            raise DataError(_broken_link(path, e)) from None
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    return stat.S_ISDIR(st.st_mode)


def _inside(path: str, real_root: str, what: str) -> str:
    """The real path of ``path``, which must lie inside ``real_root``.

    Raises:
      DataError: a symlink that loops, points nowhere, or resolves outside the image folder.
    """
    if not os.path.islink(path):
        return os.path.realpath(path)
    try:
        os.stat(path)
    except OSError as e:
        raise DataError(_broken_link(path, e)) from None
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_root]) != real_root:
        raise DataError(f"{path}: a symlink to {real}, outside the image folder {real_root}; every {what} must lie "
                        "inside the image folder (copy or move it there)")
    return real


def _broken_link(path: str, e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return f"{path}: a symlink loop (following {os.readlink(path)!r} leads back to it)"
    if e.errno == errno.ENOENT:
        return f"{path}: a symlink to {os.readlink(path)!r}, which does not exist"
    return f"{path}: a symlink to {os.readlink(path)!r}, which cannot be followed ({e.strerror})"


def _check_utf8(name: str, path: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{os.path.dirname(path)}: the name of class folder {os.fsencode(name)!r} is not UTF-8; "
                        "class names become the model's labels (rename the folder)") from None
