//! The C ABI: every `C_*` entry point. Each one checks its pointers, copies arguments out of
//! the caller's memory, calls the safe `module`, copies results back, and catches panics (the
//! module runs inside other people's processes, so nothing unwinds across this boundary).
//! All of the project's `unsafe` is in this file.
//!
//! # Safety
//! Every `C_*` function's contract is the PKCS#11 specification's: each pointer is NULL or
//! valid for the length the call gives it. NULL where a value is required is answered with
//! `CKR_ARGUMENTS_BAD`, never dereferenced.
#![allow(
    clippy::missing_safety_doc,
    reason = "the safety contract of every C_* entry point is the PKCS#11 one, stated above"
)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use cryptoki_sys::*;

use crate::attr::Template;
use crate::error::{Result, Rv};
use crate::mechanism::{self, Mechanism, Param};
use crate::module::{self, OpKind, Output};

const LIBRARY_VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

/// Runs an entry point's body, mapping its result (or a panic) to a `CK_RV`.
fn guard(f: impl FnOnce() -> Result<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(Rv(rv))) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

/// `len` bytes at `p` (NULL only with `len` 0).
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes that stay valid for `'a`.
unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    // SAFETY: non-null; the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// A required output location.
///
/// # Safety
/// `p` must be NULL or valid for writes of a `T` for `'a`.
unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T> {
    // SAFETY: the caller guarantees `p` is NULL or valid; NULL is rejected here.
    unsafe { p.as_mut() }.ok_or(Rv(CKR_ARGUMENTS_BAD))
}

/// Copies a template out of the caller's memory.
///
/// # Safety
/// `p` must be NULL or point to `n` attributes whose values are readable.
unsafe fn template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Template> {
    if n == 0 {
        return Ok(Template::default());
    }
    if p.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    // SAFETY: non-null; the caller guarantees `n` attributes.
    let attrs = unsafe { std::slice::from_raw_parts(p, n as usize) };
    let mut t = Vec::with_capacity(attrs.len());
    for a in attrs {
        // SAFETY: each attribute's value is `ulValueLen` readable bytes (or NULL and empty).
        let v = unsafe { bytes(a.pValue as *const u8, a.ulValueLen) }?;
        t.push((a.type_, v.to_vec()));
    }
    Ok(Template(t))
}

/// Reads a parameter structure `T` of exactly its size.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes.
unsafe fn param<T: Copy>(p: *const c_void, len: CK_ULONG) -> Result<T> {
    if p.is_null() || len as usize != size_of::<T>() {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    }
    // SAFETY: non-null, exactly `size_of::<T>()` readable bytes; read_unaligned copes with any
    // alignment the caller used.
    Ok(unsafe { ptr::read_unaligned(p as *const T) })
}

/// Copies a mechanism and its parameter out of the caller's memory.
///
/// # Safety
/// `p` must be NULL or point to a mechanism whose parameter is readable.
unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<Mechanism> {
    // SAFETY: the caller guarantees `p` is NULL or valid.
    let m = unsafe { p.as_ref() }.ok_or(Rv(CKR_ARGUMENTS_BAD))?;
    let (pp, len) = (m.pParameter as *const c_void, m.ulParameterLen);
    let param = match m.mechanism {
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            // SAFETY: the mechanism's parameter is a CK_RSA_PKCS_PSS_PARAMS of `len` bytes.
            let p: CK_RSA_PKCS_PSS_PARAMS = unsafe { param(pp, len) }?;
            Param::Pss {
                hash: p.hashAlg,
                mgf: p.mgf,
                salt_len: p.sLen,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: the mechanism's parameter is a CK_RSA_PKCS_OAEP_PARAMS of `len` bytes.
            let p: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param(pp, len) }?;
            let label = match p.source {
                0 | CKZ_DATA_SPECIFIED => {
                    // SAFETY: the label is `ulSourceDataLen` bytes at `pSourceData`.
                    unsafe { bytes(p.pSourceData as *const u8, p.ulSourceDataLen) }?.to_vec()
                }
                _ => return Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
            };
            Param::Oaep {
                hash: p.hashAlg,
                mgf: p.mgf,
                label,
            }
        }
        CKM_ECDH1_DERIVE => {
            // SAFETY: the mechanism's parameter is a CK_ECDH1_DERIVE_PARAMS of `len` bytes.
            let p: CK_ECDH1_DERIVE_PARAMS = unsafe { param(pp, len) }?;
            // SAFETY: shared and public data are the given lengths at the given pointers.
            let shared = unsafe { bytes(p.pSharedData, p.ulSharedDataLen) }?.to_vec();
            // SAFETY: as above.
            let public = unsafe { bytes(p.pPublicData, p.ulPublicDataLen) }?.to_vec();
            Param::Ecdh {
                kdf: p.kdf,
                shared,
                public,
            }
        }
        _ if len == 0 => Param::None,
        CKM_AES_CBC | CKM_AES_CBC_PAD => {
            // SAFETY: the IV is `len` bytes at the parameter pointer.
            Param::Iv(unsafe { bytes(pp as *const u8, len) }?.to_vec())
        }
        // SAFETY: an opaque parameter of `len` bytes.
        _ => Param::Other(unsafe { bytes(pp as *const u8, len) }?.to_vec()),
    };
    Ok(Mechanism {
        ty: m.mechanism,
        param,
    })
}

/// Hands an operation's output to the caller with the two-call convention.
///
/// # Safety
/// `buf` must be NULL or valid for `*len` bytes of writes; `len` NULL or valid.
unsafe fn give(buf: *mut u8, len: *mut CK_ULONG, output: Output) -> Result<()> {
    // SAFETY: the caller's contract for `len`.
    let len = unsafe { out(len) }?;
    match output {
        Output::Length(n) => {
            *len = n as CK_ULONG;
            Ok(())
        }
        Output::TooSmall(n) => {
            *len = n as CK_ULONG;
            Err(Rv(CKR_BUFFER_TOO_SMALL))
        }
        Output::Done(v) => {
            if !v.is_empty() {
                if buf.is_null() {
                    return Err(Rv(CKR_ARGUMENTS_BAD));
                }
                // SAFETY: `buf` holds at least `*len` >= v.len() bytes (checked by the module
                // against the capacity the caller gave).
                unsafe { ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len()) };
            }
            *len = v.len() as CK_ULONG;
            Ok(())
        }
    }
}

/// The capacity of an output buffer: None for a length query (NULL buffer).
///
/// # Safety
/// `len` must be NULL or valid.
unsafe fn capacity(buf: *const u8, len: *const CK_ULONG) -> Result<Option<usize>> {
    // SAFETY: the caller's contract for `len`.
    let n = unsafe { len.as_ref() }.ok_or(Rv(CKR_ARGUMENTS_BAD))?;
    Ok((!buf.is_null()).then_some(*n as usize))
}

/// Copies a list with the two-call convention.
///
/// # Safety
/// `list` must be NULL or valid for `*count` writes; `count` NULL or valid.
unsafe fn give_list<T: Copy>(list: *mut T, count: *mut CK_ULONG, items: &[T]) -> Result<()> {
    // SAFETY: the caller's contract for `count`.
    let count = unsafe { out(count) }?;
    if list.is_null() {
        *count = items.len() as CK_ULONG;
        return Ok(());
    }
    if (*count as usize) < items.len() {
        *count = items.len() as CK_ULONG;
        return Err(Rv(CKR_BUFFER_TOO_SMALL));
    }
    // SAFETY: `list` holds `*count` >= items.len() elements.
    unsafe { ptr::copy_nonoverlapping(items.as_ptr(), list, items.len()) };
    *count = items.len() as CK_ULONG;
    Ok(())
}

/// A blank-padded fixed-width string field.
fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

// ---- general ---------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| {
        // SAFETY: `args` is NULL or a CK_C_INITIALIZE_ARGS, per the specification.
        if let Some(a) = unsafe { (args as *const CK_C_INITIALIZE_ARGS).as_ref() } {
            if !a.pReserved.is_null() {
                return Err(Rv(CKR_ARGUMENTS_BAD));
            }
            let given = [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                return Err(Rv(CKR_ARGUMENTS_BAD));
            }
            // The module locks with the OS's primitives; it cannot use the application's.
            if given[0] && a.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(Rv(CKR_CANT_LOCK));
            }
        }
        module::initialize()
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        if !reserved.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        module::finalize()
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard(|| {
        module::get()?;
        // SAFETY: `info` is NULL or a writable CK_INFO.
        let info = unsafe { out(info) }?;
        *info = CK_INFO {
            cryptokiVersion: CK_VERSION {
                major: 2,
                minor: 40,
            },
            manufacturerID: padded("Keyward"),
            flags: 0,
            libraryDescription: padded("Keyward PKCS#11 (SmartCard-HSM)"),
            libraryVersion: LIBRARY_VERSION,
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        // SAFETY: `list` is NULL or a writable pointer.
        let list = unsafe { out(list) }?;
        *list = ptr::addr_of!(FUNCTION_LIST) as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let items = [INTERFACES[0].0, INTERFACES[1].0];
        // SAFETY: the caller's contract for `list` and `count`.
        unsafe { give_list(list, count, &items) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        // SAFETY: `interface` is NULL or a writable pointer.
        let interface = unsafe { out(interface) }?;
        if !name.is_null() {
            // SAFETY: a non-NULL name is a NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(name as *const std::ffi::c_char) };
            if name.to_bytes() != b"PKCS 11" {
                return Err(Rv(CKR_ARGUMENTS_BAD));
            }
        }
        // SAFETY: `version` is NULL or a readable CK_VERSION.
        let wanted = unsafe { version.as_ref() }.copied();
        let found = INTERFACES.iter().find(|i| {
            // SAFETY: the interfaces point at this module's static function lists, whose first
            // field is the version.
            let v = unsafe { *(i.0.pFunctionList as *const CK_VERSION) };
            wanted.is_none_or(|w| w.major == v.major && w.minor == v.minor)
                && i.0.flags & flags == flags
        });
        match found {
            Some(i) => {
                *interface = ptr::addr_of!(i.0) as *mut CK_INTERFACE;
                Ok(())
            }
            None => Err(Rv(CKR_ARGUMENTS_BAD)),
        }
    })
}

// ---- slots and tokens ------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let ids = module::get()?.slot_list(token_present != CK_FALSE);
        // SAFETY: the caller's contract for `list` and `count`.
        unsafe { give_list(list, count, &ids) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        let i = module::get()?.slot_info(slot)?;
        // SAFETY: `info` is NULL or a writable CK_SLOT_INFO.
        let info = unsafe { out(info) }?;
        *info = CK_SLOT_INFO {
            slotDescription: padded(&i.description),
            manufacturerID: padded("Keyward"),
            flags: i.flags,
            hardwareVersion: CK_VERSION { major: 1, minor: 0 },
            firmwareVersion: CK_VERSION { major: 1, minor: 0 },
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let t = module::get()?.token_info(slot)?;
        // SAFETY: `info` is NULL or a writable CK_TOKEN_INFO.
        let info = unsafe { out(info) }?;
        *info = CK_TOKEN_INFO {
            label: padded(&t.label),
            manufacturerID: padded("Keyward"),
            model: padded(&t.model),
            serialNumber: padded(&t.serial),
            flags: t.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: t.sessions,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: t.rw_sessions,
            ulMaxPinLen: 16,
            ulMinPinLen: 6,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 1, minor: 0 },
            firmwareVersion: CK_VERSION { major: 3, minor: 6 },
            utcTime: [b' '; 16],
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        module::get()?.slot(slot)?;
        let types: Vec<_> = mechanism::MECHANISMS.iter().map(|m| m.0).collect();
        // SAFETY: the caller's contract for `list` and `count`.
        unsafe { give_list(list, count, &types) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    ty: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        module::get()?.slot(slot)?;
        let i = mechanism::info(ty)?;
        // SAFETY: `info` is NULL or a writable CK_MECHANISM_INFO.
        *unsafe { out(info) }? = i;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if label.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: the SO-PIN is `pin_len` bytes at `pin`.
        let pin = unsafe { bytes(pin, pin_len) }?;
        m.init_token(slot, pin)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitPIN(
    session: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the PIN is `pin_len` bytes at `pin`.
        m.init_pin(session, unsafe { bytes(pin, pin_len) }?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetPIN(
    session: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: both PINs are the given lengths at the given pointers.
        let (old, new) = unsafe { (bytes(old, old_len)?, bytes(new, new_len)?) };
        m.set_pin(session, old, new)
    })
}

// ---- sessions --------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: `session` is NULL or writable.
        let session = unsafe { out(session) }?;
        *session = m.open_session(slot, flags)?;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::get()?.close_session(session))
}

#[unsafe(no_mangle)]
pub extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| module::get()?.close_all_sessions(slot))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard(|| {
        let i = module::get()?.session_info(session)?;
        // SAFETY: `info` is NULL or writable.
        *unsafe { out(info) }? = i;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if pin.is_null() {
            // No protected authentication path.
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: the PIN is `pin_len` bytes at `pin`.
        m.login(session, user, unsafe { bytes(pin, pin_len) }?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_LoginUser(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    username: *mut CK_UTF8CHAR,
    username_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the user name is `username_len` bytes at `username`.
        if !unsafe { bytes(username, username_len) }?.is_empty() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: forwarded with the caller's contract.
        match unsafe { C_Login(session, user, pin, pin_len) } {
            CKR_OK => Ok(()),
            rv => Err(Rv(rv)),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::get()?.logout(session))
}

// ---- objects ---------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CreateObject(
    session: CK_SESSION_HANDLE,
    tpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the template is `count` attributes at `tpl`.
        let t = unsafe { template(tpl, count) }?;
        // SAFETY: `object` is NULL or writable.
        let object = unsafe { out(object) }?;
        *object = m.create_object(session, &t)?;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_DestroyObject(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    guard(|| module::get()?.destroy_object(session, object))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let n = module::get()?.object_size(session, object)?;
        // SAFETY: `size` is NULL or writable.
        *unsafe { out(size) }? = n;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    tpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let o = module::get()?.object_of(session, object)?;
        if count == 0 {
            return Ok(());
        }
        if tpl.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: the template is `count` writable attributes at `tpl`.
        let attrs = unsafe { std::slice::from_raw_parts_mut(tpl, count as usize) };
        let mut rv = CKR_OK;
        for a in attrs {
            match o.attribute(a.type_) {
                Err(e) => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    rv = e;
                }
                Ok(v) if a.pValue.is_null() => a.ulValueLen = v.len() as CK_ULONG,
                Ok(v) if (a.ulValueLen as usize) < v.len() => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    rv = CKR_BUFFER_TOO_SMALL;
                }
                Ok(v) => {
                    // SAFETY: `pValue` holds `ulValueLen` >= v.len() bytes.
                    unsafe { ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len()) };
                    a.ulValueLen = v.len() as CK_ULONG;
                }
            }
        }
        if rv == CKR_OK { Ok(()) } else { Err(Rv(rv)) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    tpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the template is `count` attributes at `tpl`.
        let t = unsafe { template(tpl, count) }?;
        m.set_attributes(session, object, &t)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    tpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the template is `count` attributes at `tpl`.
        let t = unsafe { template(tpl, count) }?;
        m.find_init(session, &t)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if objects.is_null() && max > 0 {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: `count` is NULL or writable.
        let count = unsafe { out(count) }?;
        let found = m.find(session, max as usize)?;
        // SAFETY: `objects` holds `max` >= found.len() handles.
        unsafe { ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len()) };
        *count = found.len() as CK_ULONG;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::get()?.find_final(session))
}

// ---- sign, verify, encrypt, decrypt ------------------------------------------------------------

/// C_*Init of the key operations.
///
/// # Safety
/// `mech` must be NULL or a valid mechanism.
unsafe fn op_init(
    session: CK_SESSION_HANDLE,
    kind: OpKind,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for `mech`.
        let mech = unsafe { mechanism(mech) }?;
        m.op_init(session, kind, mech, key)
    })
}

/// A single-part call (`data` given) or a final call (NULL data, 0 length, `is_final`).
///
/// # Safety
/// Pointers per the PKCS#11 contract of C_Sign/C_Encrypt/C_Decrypt and their Final.
unsafe fn op_output(
    session: CK_SESSION_HANDLE,
    kind: OpKind,
    data: Option<(*const u8, CK_ULONG)>,
    buf: *mut u8,
    len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let input = match data {
            // SAFETY: `len` bytes of input at `p`.
            Some((p, n)) => Some(unsafe { bytes(p, n) }?),
            None => None,
        };
        // SAFETY: the caller's contract for the output buffer.
        let cap = unsafe { capacity(buf, len) }?;
        let output = m.op_output(session, kind, input, cap)?;
        // SAFETY: as above.
        unsafe { give(buf, len, output) }
    })
}

/// C_*Update: input only (the output, if any, comes with Final).
///
/// # Safety
/// `data` must be NULL or `len` readable bytes.
unsafe fn op_update(
    session: CK_SESSION_HANDLE,
    kind: OpKind,
    data: *const u8,
    len: CK_ULONG,
) -> Result<()> {
    let m = module::get()?;
    // SAFETY: the caller's contract.
    m.op_update(session, kind, unsafe { bytes(data, len) }?)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_init(session, OpKind::Sign, mech, key) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_output(session, OpKind::Sign, Some((data, data_len)), sig, sig_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    guard(|| unsafe { op_update(session, OpKind::Sign, data, len) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_output(session, OpKind::Sign, None, sig, sig_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_init(session, OpKind::Verify, mech, key) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: input and signature are the given lengths at the given pointers.
        let (data, sig) = unsafe { (bytes(data, data_len)?, bytes(sig, sig_len)?) };
        m.verify(session, Some(data), sig)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    guard(|| unsafe { op_update(session, OpKind::Verify, data, len) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyFinal(
    session: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the signature is `sig_len` bytes at `sig`.
        m.verify(session, None, unsafe { bytes(sig, sig_len) }?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_init(session, OpKind::Encrypt, mech, key) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Encrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe {
        op_output(
            session,
            OpKind::Encrypt,
            Some((data, data_len)),
            out_buf,
            out_len,
        )
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    _out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: `out_len` is NULL or writable.
        let out_len = unsafe { out(out_len) }?;
        // SAFETY: the caller's contract for the input.
        unsafe { op_update(session, OpKind::Encrypt, data, data_len) }?;
        *out_len = 0;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptFinal(
    session: CK_SESSION_HANDLE,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_output(session, OpKind::Encrypt, None, out_buf, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_init(session, OpKind::Decrypt, mech, key) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Decrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe {
        op_output(
            session,
            OpKind::Decrypt,
            Some((data, data_len)),
            out_buf,
            out_len,
        )
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    _out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: `out_len` is NULL or writable.
        let out_len = unsafe { out(out_len) }?;
        // SAFETY: the caller's contract for the input.
        unsafe { op_update(session, OpKind::Decrypt, data, data_len) }?;
        *out_len = 0;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptFinal(
    session: CK_SESSION_HANDLE,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded with the caller's contract.
    unsafe { op_output(session, OpKind::Decrypt, None, out_buf, out_len) }
}

// ---- digests ---------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for `mech`.
        m.digest_init(session, &unsafe { mechanism(mech) }?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Digest(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for input and output.
        let (input, cap) = unsafe { (bytes(data, data_len)?, capacity(digest, digest_len)?) };
        let output = m.digest(session, Some(input), cap)?;
        // SAFETY: as above.
        unsafe { give(digest, digest_len, output) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for the input.
        m.digest_update(session, unsafe { bytes(data, len) }?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestFinal(
    session: CK_SESSION_HANDLE,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for the output.
        let cap = unsafe { capacity(digest, digest_len) }?;
        let output = m.digest(session, None, cap)?;
        // SAFETY: as above.
        unsafe { give(digest, digest_len, output) }
    })
}

// ---- keys and randomness -----------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    tpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for mechanism, template and output.
        let (mech, t, key) = unsafe { (mechanism(mech)?, template(tpl, count)?, out(key)?) };
        *key = m.generate_key(session, &mech, &t)?;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_tpl: *mut CK_ATTRIBUTE,
    pub_count: CK_ULONG,
    priv_tpl: *mut CK_ATTRIBUTE,
    priv_count: CK_ULONG,
    pub_key: *mut CK_OBJECT_HANDLE,
    priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for mechanism and templates.
        let (mech, public, private) = unsafe {
            (
                mechanism(mech)?,
                template(pub_tpl, pub_count)?,
                template(priv_tpl, priv_count)?,
            )
        };
        // SAFETY: the caller's contract for the outputs.
        let (pub_key, priv_key) = unsafe { (out(pub_key)?, out(priv_key)?) };
        let (p, k) = m.generate_key_pair(session, &mech, &public, &private)?;
        *pub_key = p;
        *priv_key = k;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DeriveKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    tpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        // SAFETY: the caller's contract for mechanism, template and output.
        let (mech, t, key) = unsafe { (mechanism(mech)?, template(tpl, count)?, out(key)?) };
        *key = m.derive_key(session, &mech, base, &t)?;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    buf: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if buf.is_null() && len > 0 {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let r = m.generate_random(session, len as usize)?;
        // SAFETY: `buf` holds `len` bytes.
        unsafe { ptr::copy_nonoverlapping(r.as_ptr(), buf, r.len()) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    _seed: *mut CK_BYTE,
    _len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        module::get()?.session_info(session)?;
        // The element's generator takes no seed.
        Err(Rv(CKR_RANDOM_SEED_NOT_SUPPORTED))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if !reserved.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: `slot` is NULL or writable.
        let slot = unsafe { out(slot) }?;
        *slot = m.wait_for_slot_event(flags & CKF_DONT_BLOCK == 0)?;
        Ok(())
    })
}

// ---- what this token does not do -----------------------------------------------------------

/// Entry points for functions the module does not offer: they answer
/// CKR_FUNCTION_NOT_SUPPORTED (or CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize).
macro_rules! not_supported {
    ($($name:ident($($arg:ty),*);)*) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($(_: $arg),*) -> CK_RV {
            guard(|| {
                module::get()?;
                Err(Rv(CKR_FUNCTION_NOT_SUPPORTED))
            })
        }
    )*};
}

not_supported! {
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_WrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_UnwrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_SessionCancel(CK_SESSION_HANDLE, CK_FLAGS);
    C_MessageEncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_EncryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_EncryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageEncryptFinal(CK_SESSION_HANDLE);
    C_MessageDecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_DecryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_DecryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageDecryptFinal(CK_SESSION_HANDLE);
    C_MessageSignInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_SignMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_MessageSignFinal(CK_SESSION_HANDLE);
    C_MessageVerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_VerifyMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_MessageVerifyFinal(CK_SESSION_HANDLE);
}

#[unsafe(no_mangle)]
pub extern "C" fn C_GetFunctionStatus(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        module::get()?.session_info(session)?;
        Err(Rv(CKR_FUNCTION_NOT_PARALLEL))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_CancelFunction(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        module::get()?.session_info(session)?;
        Err(Rv(CKR_FUNCTION_NOT_PARALLEL))
    })
}

// ---- function lists --------------------------------------------------------------------------

macro_rules! function_list {
    ($ty:ident, $major:expr, $minor:expr, { $($extra:ident),* }) => {
        $ty {
            version: CK_VERSION { major: $major, minor: $minor },
            C_Initialize: Some(C_Initialize),
            C_Finalize: Some(C_Finalize),
            C_GetInfo: Some(C_GetInfo),
            C_GetFunctionList: Some(C_GetFunctionList),
            C_GetSlotList: Some(C_GetSlotList),
            C_GetSlotInfo: Some(C_GetSlotInfo),
            C_GetTokenInfo: Some(C_GetTokenInfo),
            C_GetMechanismList: Some(C_GetMechanismList),
            C_GetMechanismInfo: Some(C_GetMechanismInfo),
            C_InitToken: Some(C_InitToken),
            C_InitPIN: Some(C_InitPIN),
            C_SetPIN: Some(C_SetPIN),
            C_OpenSession: Some(C_OpenSession),
            C_CloseSession: Some(C_CloseSession),
            C_CloseAllSessions: Some(C_CloseAllSessions),
            C_GetSessionInfo: Some(C_GetSessionInfo),
            C_GetOperationState: Some(C_GetOperationState),
            C_SetOperationState: Some(C_SetOperationState),
            C_Login: Some(C_Login),
            C_Logout: Some(C_Logout),
            C_CreateObject: Some(C_CreateObject),
            C_CopyObject: Some(C_CopyObject),
            C_DestroyObject: Some(C_DestroyObject),
            C_GetObjectSize: Some(C_GetObjectSize),
            C_GetAttributeValue: Some(C_GetAttributeValue),
            C_SetAttributeValue: Some(C_SetAttributeValue),
            C_FindObjectsInit: Some(C_FindObjectsInit),
            C_FindObjects: Some(C_FindObjects),
            C_FindObjectsFinal: Some(C_FindObjectsFinal),
            C_EncryptInit: Some(C_EncryptInit),
            C_Encrypt: Some(C_Encrypt),
            C_EncryptUpdate: Some(C_EncryptUpdate),
            C_EncryptFinal: Some(C_EncryptFinal),
            C_DecryptInit: Some(C_DecryptInit),
            C_Decrypt: Some(C_Decrypt),
            C_DecryptUpdate: Some(C_DecryptUpdate),
            C_DecryptFinal: Some(C_DecryptFinal),
            C_DigestInit: Some(C_DigestInit),
            C_Digest: Some(C_Digest),
            C_DigestUpdate: Some(C_DigestUpdate),
            C_DigestKey: Some(C_DigestKey),
            C_DigestFinal: Some(C_DigestFinal),
            C_SignInit: Some(C_SignInit),
            C_Sign: Some(C_Sign),
            C_SignUpdate: Some(C_SignUpdate),
            C_SignFinal: Some(C_SignFinal),
            C_SignRecoverInit: Some(C_SignRecoverInit),
            C_SignRecover: Some(C_SignRecover),
            C_VerifyInit: Some(C_VerifyInit),
            C_Verify: Some(C_Verify),
            C_VerifyUpdate: Some(C_VerifyUpdate),
            C_VerifyFinal: Some(C_VerifyFinal),
            C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
            C_VerifyRecover: Some(C_VerifyRecover),
            C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
            C_GenerateKey: Some(C_GenerateKey),
            C_GenerateKeyPair: Some(C_GenerateKeyPair),
            C_WrapKey: Some(C_WrapKey),
            C_UnwrapKey: Some(C_UnwrapKey),
            C_DeriveKey: Some(C_DeriveKey),
            C_SeedRandom: Some(C_SeedRandom),
            C_GenerateRandom: Some(C_GenerateRandom),
            C_GetFunctionStatus: Some(C_GetFunctionStatus),
            C_CancelFunction: Some(C_CancelFunction),
            C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
            $($extra: Some($extra),)*
        }
    };
}

static FUNCTION_LIST: CK_FUNCTION_LIST = function_list!(CK_FUNCTION_LIST, 2, 40, {});

static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = function_list!(CK_FUNCTION_LIST_3_0, 3, 0, {
    C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel,
    C_MessageEncryptInit, C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext,
    C_MessageEncryptFinal, C_MessageDecryptInit, C_DecryptMessage, C_DecryptMessageBegin,
    C_DecryptMessageNext, C_MessageDecryptFinal, C_MessageSignInit, C_SignMessage,
    C_SignMessageBegin, C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit,
    C_VerifyMessage, C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
});

/// A `CK_INTERFACE` pointing at static, never-written data.
struct Interface(CK_INTERFACE);

// SAFETY: the interface only points at the immutable statics above (a name literal and the
// function lists), so sharing it between threads shares only read-only data.
unsafe impl Sync for Interface {}

static INTERFACES: [Interface; 2] = [
    Interface(CK_INTERFACE {
        pInterfaceName: c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: ptr::addr_of!(FUNCTION_LIST_3_0) as *mut c_void,
        flags: 0,
    }),
    Interface(CK_INTERFACE {
        pInterfaceName: c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: ptr::addr_of!(FUNCTION_LIST) as *mut c_void,
        flags: 0,
    }),
];
