"""The catalogue: individuals and their photos, enrolment, and review of answers.

Every change is committed to the database and mirrored into the search index before
the answer is sent: no rebuild is needed for it to be searchable.
"""

from __future__ import annotations

import time
from functools import partial
from http import HTTPStatus
from typing import Annotated

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromQuery, JSONBody, Parameter

from embeddings.images import load_photo, media_type
from indexer.photo_files import THUMBNAIL_SIZES
from indexer.results import EnrolResult
from indexer.store import ImageRow, Individual, NotFound
from service.errors import BadRequest, ErrorBody, PayloadTooLarge, UnknownReference, errors
from service.runtime import Runtime, file_name
from service.schemas import (
    ID_PATTERN,
    DeleteResult,
    EnrolForm,
    ImagesForm,
    IndividualDetail,
    IndividualPage,
    IndividualPatch,
    MergeRequest,
    MergeResult,
    NewIndividual,
    ReviewForm,
    ReviewResult,
)

__all__ = [
    "add_images",
    "create_individual",
    "delete_image",
    "delete_individual",
    "enrol",
    "get_image",
    "get_image_file",
    "get_image_thumbnail",
    "get_individual",
    "list_individuals",
    "merge_individual",
    "review",
    "update_individual",
]

MAX_PAGE = 500
# SQLite integers are 64-bit: a larger offset is a 400, not an overflow. 2**53 is exact
# as a JSON number too, so clients that read the schema's bound as a float agree on it.
MAX_OFFSET = 2**53
ImageId = Annotated[int, Parameter(ge=1, le=MAX_OFFSET, description="the image's id")]
IndividualPath = Annotated[
    str,
    Parameter(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="the individual's id (see `IndividualId`)",
    ),
]
MAX_PHOTOS_PER_REQUEST = 100
IMAGE_FILE_PATH = "/v1/images/{image_id}/file"
"""Where a stored photo's file is served (`{image_id}` to fill in)."""

# A photo file never changes under its URL: its content is its sha256, and a deleted
# image's id is never reused.
_IMMUTABLE = "private, max-age=31536000, immutable"
_FILE_RESPONSES = {
    **errors(),
    304: ResponseSpec(None, description="Not modified: the `If-None-Match` ETag matches"),
    404: ResponseSpec(
        ErrorBody,
        description="No such image, or it was enrolled before photo files were kept",
    ),
}


@post("/v1/enrol", responses=errors(409, 413, 422))
async def enrol(
    data: Annotated[EnrolForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
) -> Response[EnrolResult]:
    """Add a labelled photo to the gallery: 201 when stored, 200 when already there."""
    individual_id = _required("individual_id", data.individual_id)
    content = await runtime.read_photo(data.file)
    photo = await runtime.run(
        partial(load_photo, content, max_pixels=runtime.settings.max_image_pixels)
    )
    result = await runtime.run(
        partial(
            runtime.catalogue.enrol,
            photo,
            individual_id,
            species=_optional(data.species),
            source_name=file_name(data.file),
            move=data.move,
        )
    )
    status = HTTPStatus.CREATED if result.created else HTTPStatus.OK
    return Response(result, status_code=int(status))


@get("/v1/individuals", responses=errors())
async def list_individuals(
    runtime: NamedDependency[Runtime],
    species: FromQuery[str | None] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    search: Annotated[
        str | None,
        Parameter(
            max_length=128,
            description="only individuals whose id or name contains this text (ASCII"
            " letters in either case)",
        ),
    ] = None,
) -> IndividualPage:
    """A page of individuals ordered by id, optionally of one species, optionally those
    whose id or name contains `search`."""
    # One more than asked tells whether another page follows.
    rows = await runtime.read(
        partial(runtime.catalogue.list_individuals, species, limit + 1, offset, _optional(search))
    )
    more = len(rows) > limit
    return IndividualPage(
        items=rows[:limit], limit=limit, offset=offset, next_offset=offset + limit if more else None
    )


@post("/v1/individuals", responses=errors(409))
async def create_individual(
    data: JSONBody[NewIndividual], runtime: NamedDependency[Runtime]
) -> Individual:
    """Add an individual with no photos yet; 409 if the id is taken."""
    individual_id = _required("id", data.id)
    return await runtime.run(
        partial(
            runtime.catalogue.create_individual,
            individual_id,
            species=_optional(data.species),
            name=_optional(data.name),
        )
    )


@get("/v1/individuals/{individual_id:str}", responses=errors(404))
async def get_individual(
    individual_id: IndividualPath, runtime: NamedDependency[Runtime]
) -> IndividualDetail:
    """An individual with its photos (sightings: EXIF date and GPS when known)."""
    return await runtime.read(partial(_detail, runtime, individual_id))


@patch("/v1/individuals/{individual_id:str}", responses=errors(404, 409))
async def update_individual(
    individual_id: IndividualPath,
    data: JSONBody[IndividualPatch],
    runtime: NamedDependency[Runtime],
) -> Individual:
    """Rename (`id`), set the species or the name; omitted fields stay as they are."""
    return await runtime.run(partial(_update, runtime, individual_id, data))


@post(
    "/v1/individuals/{individual_id:str}/merge",
    status_code=HTTPStatus.OK,
    responses=errors(404, 409, 422),
)
async def merge_individual(
    individual_id: IndividualPath, data: JSONBody[MergeRequest], runtime: NamedDependency[Runtime]
) -> MergeResult:
    """Move every photo of `source` into this individual and delete `source`."""
    return await runtime.run(partial(_merge, runtime, data.source, individual_id))


@delete("/v1/individuals/{individual_id:str}", status_code=HTTPStatus.OK, responses=errors(404))
async def delete_individual(
    individual_id: IndividualPath, runtime: NamedDependency[Runtime]
) -> DeleteResult:
    """Delete an individual with all its photos."""
    deleted = await runtime.run(partial(runtime.catalogue.delete_individual, individual_id))
    return DeleteResult(deleted_images=deleted)


@post("/v1/individuals/{individual_id:str}/images", responses=errors(404, 409, 413, 422))
async def add_images(
    individual_id: IndividualPath,
    data: Annotated[ImagesForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
) -> list[EnrolResult]:
    """Enrol photos (field `files`, repeated) of an existing individual."""
    if not data.files:
        raise BadRequest("files: send at least one photo")
    if len(data.files) > MAX_PHOTOS_PER_REQUEST:
        raise PayloadTooLarge(f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
    if await runtime.run(partial(runtime.catalogue.individual, individual_id)) is None:
        raise NotFound(f"individual {individual_id!r} not found")
    # Every photo is decoded before any is stored, so one bad photo stores none.
    photos = []
    for upload in data.files:
        content = await runtime.read_photo(upload)
        photos.append((file_name(upload), content))
    decoded = await runtime.run(
        lambda: [
            (name, load_photo(content, max_pixels=runtime.settings.max_image_pixels))
            for name, content in photos
        ]
    )
    return await runtime.run(partial(runtime.catalogue.enrol_all, decoded, individual_id))


@get("/v1/images/{image_id:int}", responses=errors(404))
async def get_image(image_id: ImageId, runtime: NamedDependency[Runtime]) -> ImageRow:
    """One stored photo's record (`file_bytes` is null when its file is not kept)."""
    row = await runtime.read(partial(runtime.catalogue.image, image_id))
    if row is None:
        raise NotFound(f"image {image_id} not found")
    return row


@get(
    "/v1/images/{image_id:int}/file",
    media_type="image/*",
    responses=_FILE_RESPONSES,
    opt={"read": True},
)
async def get_image_file(
    request: Request, image_id: ImageId, runtime: NamedDependency[Runtime]
) -> Response[bytes]:
    """The stored photo's original file, byte for byte, with its media type.

    Cached for good (`ETag` is the quoted sha256; `If-None-Match` answers 304). 404 for
    an unknown image and for one enrolled before photo files were kept.
    """
    row = await runtime.read(partial(_stored_image, runtime, image_id))
    etag = f'"{row.sha256}"'
    if _matches(request.headers.get("if-none-match"), etag):
        return _not_modified(etag)
    content = await runtime.read(partial(_read_file, runtime, row))
    return Response(
        content,
        media_type=media_type(content, row.format),
        headers={"ETag": etag, "Cache-Control": _IMMUTABLE},
    )


@get(
    "/v1/images/{image_id:int}/thumbnail",
    media_type="image/jpeg",
    responses={
        **_FILE_RESPONSES,
        400: ResponseSpec(ErrorBody, description="`size` out of range"),
    },
    opt={"read": True},
)
async def get_image_thumbnail(
    request: Request,
    image_id: ImageId,
    runtime: NamedDependency[Runtime],
    size: Annotated[
        int,
        Parameter(
            ge=THUMBNAIL_SIZES.start,
            le=THUMBNAIL_SIZES.stop - 1,
            description="long side in pixels (a smaller photo is not enlarged)",
        ),
    ] = 256,
) -> Response[bytes]:
    """A JPEG thumbnail of the stored photo (EXIF orientation applied), made once and
    cached; the same caching headers as the file, with an ETag that names the size."""
    row = await runtime.read(partial(_stored_image, runtime, image_id))
    etag = f'"{row.sha256}-{size}"'
    if _matches(request.headers.get("if-none-match"), etag):
        return _not_modified(etag)
    content = await runtime.read(partial(_thumbnail, runtime, row, size))
    return Response(
        content, media_type="image/jpeg", headers={"ETag": etag, "Cache-Control": _IMMUTABLE}
    )


@delete("/v1/images/{image_id:int}", status_code=HTTPStatus.NO_CONTENT, responses=errors(404))
async def delete_image(image_id: ImageId, runtime: NamedDependency[Runtime]) -> None:
    """Delete one photo; its individual stays."""
    if not await runtime.run(partial(runtime.catalogue.delete_image, image_id)):
        raise NotFound(f"image {image_id} not found")


@post("/v1/review", status_code=HTTPStatus.OK, responses=errors(404, 409, 413, 422))
async def review(
    data: Annotated[ReviewForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
) -> ReviewResult:
    """Record a person's verdict on a query photo and enrol it accordingly.

    confirm: the photo joins `individual_id`, which must exist (404 otherwise).
    no_match: the photo starts a new individual, named `individual_id` (409 if taken)
    or given a made-up id.
    """
    content = await runtime.read_photo(data.file)
    return await runtime.run(partial(_review, runtime, data, content, file_name(data.file)))


# ---------------------------------------------------------------------- work (in the pool)


def _stored_image(runtime: Runtime, image_id: int) -> ImageRow:
    """The image's record, if its file is stored; NotFound otherwise."""
    row = runtime.catalogue.image(image_id)
    if row is None:
        raise NotFound(f"image {image_id} not found")
    if not runtime.catalogue.photos.has(row.sha256):
        raise NotFound(_no_file(image_id))
    return row


def _read_file(runtime: Runtime, row: ImageRow) -> bytes:
    try:
        return runtime.catalogue.photos.read(row.sha256)
    except FileNotFoundError:  # deleted since it was looked up
        raise NotFound(_no_file(row.id)) from None


def _thumbnail(runtime: Runtime, row: ImageRow, size: int) -> bytes:
    try:
        return runtime.catalogue.photos.thumbnail(row.sha256, size)
    except FileNotFoundError:
        raise NotFound(_no_file(row.id)) from None


def _no_file(image_id: int) -> str:
    return (
        f"image {image_id} has no stored file: it was enrolled before photo files were"
        " kept (enrol the photo again to keep it)"
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def _not_modified(etag: str) -> Response[bytes]:
    return Response(
        b"",
        status_code=int(HTTPStatus.NOT_MODIFIED),
        headers={"ETag": etag, "Cache-Control": _IMMUTABLE},
    )


def _detail(runtime: Runtime, individual_id: str) -> IndividualDetail:
    catalogue = runtime.catalogue
    individual = catalogue.individual(individual_id)
    if individual is None:
        raise NotFound(f"individual {individual_id!r} not found")
    return IndividualDetail(individual=individual, images=catalogue.images_of(individual_id))


def _update(runtime: Runtime, individual_id: str, data: IndividualPatch) -> Individual:
    catalogue = runtime.catalogue
    current = individual_id
    # The rename goes first: it is the change that can be refused (409), and then
    # nothing else has been changed either.
    if data.id is not None:
        current = _required("id", data.id)
        catalogue.rename_individual(individual_id, current)
    if data.species is not None or data.name is not None:
        return catalogue.update_individual(
            current, species=_optional(data.species), name=_optional(data.name)
        )
    row = catalogue.individual(current)
    if row is None:
        raise NotFound(f"individual {individual_id!r} not found")
    return row


def _merge(runtime: Runtime, source: str, target: str) -> MergeResult:
    source = _required("source", source)
    # 404 is for the path's individual; a source that does not exist is a request that
    # cannot be carried out.
    if runtime.catalogue.individual(target) is not None and (
        runtime.catalogue.individual(source) is None
    ):
        raise UnknownReference(f"source: individual {source!r} not found")
    moved = runtime.catalogue.merge_individuals(source, target)
    row = runtime.catalogue.individual(target)
    if row is None:
        raise NotFound(f"individual {target!r} not found")
    return MergeResult(individual=row, moved_images=moved)


def _review(runtime: Runtime, data: ReviewForm, content: bytes, name: str) -> ReviewResult:
    catalogue = runtime.catalogue
    photo = load_photo(content, max_pixels=runtime.settings.max_image_pixels)
    species = _optional(data.species)
    requested = _optional(data.individual_id)
    if data.verdict == "confirm":
        if requested is None:
            raise BadRequest("individual_id: required to confirm a match")
        if catalogue.individual(requested) is None:
            raise NotFound(f"individual {requested!r} not found")
        individual_id = requested
    else:
        individual_id = requested or f"new-{time.strftime('%Y%m%d')}-{photo.sha256[:8]}"
    # One call: a photo stored under another individual (without `move`), or a "new"
    # individual that exists, is refused before anything is written.
    result = catalogue.enrol(
        photo,
        individual_id,
        species=species,
        source_name=name,
        move=data.move,
        new_individual=data.verdict == "no_match",
    )
    return ReviewResult(
        verdict=data.verdict,
        individual_id=result.individual_id,
        image_id=result.image_id,
        created_individual=data.verdict == "no_match",
        created_image=result.created,
    )


def _required(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise BadRequest(f"{field}: must not be empty")
    return value


def _optional(value: str | None) -> str | None:
    return (value or "").strip() or None
