//! The applet's personalization: the data groupings the card manager routes to it during a
//! personalization session (INSTALL [for personalization] + STORE DATA). Through them the
//! applet generates PrK.DevAut, is initialized, learns its trusted root and receives
//! EF.C_DevAut, after which its device identity is fixed.

use keyward_apdu::{StatusWord as Sw, tlv};
use keyward_cvc::{Body, Certificate, PublicKey, TrustStore, oid};

use crate::applet::{Applet, Persist, fid};
use crate::card_manager::dgi;
use crate::dev_pki::{DEVICE_CURVE, today};
use crate::state::{DeviceKey, HexBytes, SecretBytes};
use keyward_crypto::{EcKey, PrivateKey};

impl<P: Persist> Applet<P> {
    /// Handles one DGI; returns its response data (only PrK.DevAut generation has any, and
    /// needs a case-4 STORE DATA to carry it).
    pub(crate) fn personalize(
        &mut self,
        tag: u16,
        value: &[u8],
        case4: bool,
    ) -> Result<Vec<u8>, Sw> {
        if self.state.files.contains_key(&fid::C_DEVAUT) {
            // The device identity is complete: nothing about it changes any more.
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        match tag {
            dgi::GENERATE_DEVAUT if case4 => self.generate_device_key(value),
            dgi::GENERATE_DEVAUT => Err(Sw::INCORRECT_P1P2),
            dgi::INITIALIZE => self.initialize_device(value).map(|()| Vec::new()),
            dgi::ROOT => self.store_root(value).map(|()| Vec::new()),
            dgi::C_DEVAUT => self.store_device_chain(value).map(|()| Vec::new()),
            _ => Err(Sw::REFERENCE_NOT_FOUND),
        }
    }

    /// Generates PrK.DevAut (brainpoolP256r1) and returns its self-signed CV request.
    fn generate_device_key(&mut self, value: &[u8]) -> Result<Vec<u8>, Sw> {
        let (mut chr, mut car) = (None, None);
        for item in tlv::TlvIter::new(value) {
            let item = item.map_err(|_| Sw::WRONG_DATA)?;
            match item.tag.0 {
                0x5F20 => chr = Some(item.value),
                0x42 => car = Some(item.value),
                _ => return Err(Sw::WRONG_DATA),
            }
        }
        let chr = chr.ok_or(Sw::WRONG_DATA)?;
        let chr_text = std::str::from_utf8(chr).map_err(|_| Sw::WRONG_DATA)?;
        if !(1..=16).contains(&chr.len()) || !chr_text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Sw::WRONG_DATA);
        }
        let key = EcKey::generate(DEVICE_CURVE).map_err(|_| Sw::UNKNOWN)?;
        let body = Body {
            cpi: 0,
            car: car.map(<[u8]>::to_vec),
            public_key: PublicKey::Ec {
                algorithm: oid::TA_ECDSA_SHA256.to_vec(),
                domain: Some(DEVICE_CURVE.domain()),
                point: key.public_point().to_vec(),
            },
            chr: chr.to_vec(),
            chat: None,
            effective: None,
            expiration: None,
            extensions: None,
        };
        let device = DeviceKey {
            curve: DEVICE_CURVE,
            private: SecretBytes::new(key.private_bytes().to_vec()),
            chr: chr_text.to_string(),
        };
        let signed = body.encode().map_err(|_| Sw::UNKNOWN)?;
        let signature =
            keyward_cvc::signature::sign(&PrivateKey::Ec(key), oid::TA_ECDSA_SHA256, &signed)
                .map_err(|_| Sw::UNKNOWN)?;
        let request = Certificate::assemble(body, signature).map_err(|_| Sw::UNKNOWN)?;
        self.mutate(|s| {
            s.device = Some(device);
            Ok(())
        })?;
        Ok(request.raw)
    }

    /// Adds a trusted root (self-signed, role C0, explicit domain parameters).
    fn store_root(&mut self, value: &[u8]) -> Result<(), Sw> {
        let root = Certificate::parse(value).map_err(|_| Sw::WRONG_DATA)?;
        TrustStore::new()
            .add_root(root)
            .map_err(|_| Sw::WRONG_DATA)?;
        self.mutate(|s| {
            if !s.roots.iter().any(|r| r.0 == value) {
                s.roots.push(HexBytes(value.to_vec()));
            }
            Ok(())
        })
    }

    /// Stores EF.C_DevAut after checking it certifies PrK.DevAut under the CHR it was generated
    /// for, and, when the element knows roots, that the chain validates against one of them.
    fn store_device_chain(&mut self, value: &[u8]) -> Result<(), Sw> {
        let device = self
            .state
            .device
            .as_ref()
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)?;
        let certs = Certificate::parse_chain(value).map_err(|_| Sw::WRONG_DATA)?;
        let [cert, dica] = certs.as_slice() else {
            return Err(Sw::WRONG_DATA);
        };
        let point = EcKey::from_private(device.curve, &device.private.0)
            .map_err(|_| Sw::UNKNOWN)?
            .public_point()
            .to_vec();
        let certified_point = match &cert.body.public_key {
            PublicKey::Ec { point, .. } => point,
            PublicKey::Rsa { .. } => return Err(Sw::WRONG_DATA),
        };
        if *certified_point != point || cert.body.chr != device.chr.as_bytes() {
            return Err(Sw::WRONG_DATA);
        }
        if !self.state.roots.is_empty() {
            let mut store = TrustStore::new();
            for root in &self.state.roots {
                let root = Certificate::parse(&root.0).map_err(|_| Sw::MEMORY_FAILURE)?;
                store.add_root(root).map_err(|_| Sw::MEMORY_FAILURE)?;
            }
            store.validate(cert, dica, today()).map_err(|e| {
                tracing::debug!(error = %e, "EF.C_DevAut does not validate");
                Sw::WRONG_DATA
            })?;
        }
        self.mutate(|s| {
            s.files.insert(fid::C_DEVAUT, HexBytes(value.to_vec()));
            Ok(())
        })
    }
}
